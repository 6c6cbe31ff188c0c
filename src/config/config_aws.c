#include "config/config_aws.h"

#include <stdlib.h>
#include <string.h>

#define ERR CONFIG_YAML_ERR
#define COUNT CONFIG_COUNT

static const char *const wires[] = {"openai", "bedrock-converse",
                                    "sagemaker"}; /* enum cfg_wire's order */
static const char *const sources[] = {"auto", "static", "env",
                                      "container"}; /* enum cfg_aws_credentials */

const char *config_aws_wire_name(enum cfg_wire w)
{
    return (size_t)w < COUNT(wires) ? wires[w] : "?";
}

void config_aws_parse_wire(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                           const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    int i = config_yaml_choice(ld, v, name, "wire", wires, COUNT(wires));
    if (i >= 0) p->wire = (enum cfg_wire)i;
    free(name);
}

static void parse_source(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                         const struct config_yaml_field *f)
{
    struct cfg_aws *a = obj;
    char *name = config_yaml_text(ld, v);
    if (!name) return;
    int i = config_yaml_choice(ld, v, name, "credentials source", sources, COUNT(sources));
    if (i >= 0) a->credentials = (enum cfg_aws_credentials)i;
    free(name);
}

static const struct config_yaml_field aws_fields[] = {
    CONFIG_FIELD("region", config_yaml_string, struct cfg_aws, region, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    CONFIG_FIELD("service", config_yaml_string, struct cfg_aws, service, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    CONFIG_SECTION("credentials", parse_source, 0),
    CONFIG_FIELD("access_key_id", config_yaml_string, struct cfg_aws, access_key_id, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    CONFIG_FIELD("secret_access_key", config_yaml_string, struct cfg_aws, secret_access_key, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
    CONFIG_FIELD("session_token", config_yaml_string, struct cfg_aws, session_token, 0, 0,
                 CONFIG_YAML_EMPTY_IS_NULL | CONFIG_YAML_HEADER_SAFE),
};

void config_aws_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f)
{
    struct cfg_provider *p = obj;
    if (!p->aws && !(p->aws = calloc(1, sizeof *p->aws))) {
        ERR(ld, v, "out of memory");
        return;
    }
    config_yaml_walk(ld, v, aws_fields, COUNT(aws_fields), p->aws);
}

static const char *env(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* "bedrock-runtime.eu-west-1.amazonaws.com" → "eu-west-1" (the label before the domain). */
static char *region_of_host(const char *host)
{
    const char *dom = host ? strstr(host, ".amazonaws.com") : NULL;
    if (!dom) return NULL;
    const char *start = dom;
    while (start > host && start[-1] != '.')
        start--;
    return start < dom ? strndup(start, (size_t)(dom - start)) : NULL;
}

void config_aws_finish(struct config_yaml_loader *ld, yaml_node_t *node, struct cfg_provider *p)
{
    if (p->wire == CFG_WIRE_OPENAI) {
        if (p->aws) ERR(ld, node, "aws: is for wire: bedrock-converse or sagemaker");
        return;
    }
    if (p->kind == CFG_PROVIDER_SIM) {
        ERR(ld, node, "a simulated provider (sim://) speaks the openai wire only");
        return;
    }
    struct cfg_aws *a = p->aws;
    if (!a && !(a = p->aws = calloc(1, sizeof *a))) {
        ERR(ld, node, "out of memory");
        return;
    }
    if (!a->region) {
        const char *r = env("AWS_REGION");
        if (!r) r = env("AWS_DEFAULT_REGION");
        a->region = r ? config_yaml_strdup(ld, r) : region_of_host(p->host);
        if (!a->region)
            ERR(ld, node,
                "no AWS region: set aws.region (or AWS_REGION), or a base_url on amazonaws.com");
    }
    if (!a->service)
        a->service =
            config_yaml_strdup(ld, p->wire == CFG_WIRE_SAGEMAKER ? "sagemaker" : "bedrock");
    bool in_file = a->access_key_id || a->secret_access_key || a->session_token;
    if (a->credentials == CFG_AWS_CRED_AUTO)
        a->credentials = in_file                    ? CFG_AWS_CRED_STATIC
                         : env("AWS_ACCESS_KEY_ID") ? CFG_AWS_CRED_ENV
                         : env("AWS_CONTAINER_CREDENTIALS_FULL_URI") ||
                                 env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                             ? CFG_AWS_CRED_CONTAINER
                             : CFG_AWS_CRED_STATIC;
    switch (a->credentials) {
    case CFG_AWS_CRED_STATIC:
        if (!a->access_key_id || !a->secret_access_key)
            ERR(ld, node,
                "no AWS credentials: set aws.access_key_id and aws.secret_access_key (e.g. "
                "${AWS_SECRET_ACCESS_KEY}), "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
                "AWS_CONTAINER_CREDENTIALS_FULL_URI");
        break;
    case CFG_AWS_CRED_ENV:
        if (in_file) {
            ERR(ld, node,
                "aws.credentials: env takes its keys from the environment, not from the file");
            break;
        }
        if (!env("AWS_ACCESS_KEY_ID") || !env("AWS_SECRET_ACCESS_KEY")) {
            ERR(ld, node, "aws.credentials: env needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
            break;
        }
        a->access_key_id = config_yaml_strdup(ld, env("AWS_ACCESS_KEY_ID"));
        a->secret_access_key = config_yaml_strdup(ld, env("AWS_SECRET_ACCESS_KEY"));
        if (env("AWS_SESSION_TOKEN"))
            a->session_token = config_yaml_strdup(ld, env("AWS_SESSION_TOKEN"));
        break;
    case CFG_AWS_CRED_CONTAINER:
        if (in_file)
            ERR(ld, node, "aws.credentials: container fetches its keys; remove them from the file");
        else if (!env("AWS_CONTAINER_CREDENTIALS_FULL_URI") &&
                 !env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"))
            ERR(ld, node,
                "aws.credentials: container needs AWS_CONTAINER_CREDENTIALS_FULL_URI or "
                "_RELATIVE_URI");
        break;
    case CFG_AWS_CRED_AUTO:
        break;
    }
}

void config_aws_free(struct cfg_aws *a)
{
    if (!a) return;
    free(a->region);
    free(a->service);
    free(a->access_key_id);
    free(a->secret_access_key);
    free(a->session_token);
    free(a);
}
