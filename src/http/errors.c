#include "http/errors.h"

#include <string.h>

struct err_info {
    int status;
    const char *type;
    const char *code;
};

static const struct err_info err_table[] = {
    [GW_ERR_BAD_JSON] = {400, "invalid_request_error", "invalid_json"},
    [GW_ERR_BAD_FIELD] = {400, "invalid_request_error", "invalid_value"},
    [GW_ERR_BAD_REQUEST] = {400, "invalid_request_error", "bad_request"},
    [GW_ERR_UNAUTHORIZED] = {401, "authentication_error", "invalid_api_key"},
    [GW_ERR_FORBIDDEN] = {403, "permission_error", "forbidden"},
    [GW_ERR_UNKNOWN_MODEL] = {404, "invalid_request_error", "model_not_found"},
    [GW_ERR_NOT_FOUND] = {404, "invalid_request_error", "not_found"},
    [GW_ERR_METHOD] = {405, "invalid_request_error", "method_not_allowed"},
    [GW_ERR_TIMEOUT_CLIENT] = {408, "invalid_request_error", "request_timeout"},
    [GW_ERR_TOO_LARGE] = {413, "invalid_request_error", "request_too_large"},
    [GW_ERR_HEADERS_TOO_LARGE] = {431, "invalid_request_error", "headers_too_large"},
    [GW_ERR_RATE_LIMITED] = {429, "rate_limit_error", "rate_limit_exceeded"},
    [GW_ERR_QUOTA] = {429, "insufficient_quota", "insufficient_quota"},
    [GW_ERR_INTERNAL] = {500, "server_error", "internal_error"},
    [GW_ERR_UPSTREAM] = {502, "upstream_error", "upstream_failed"},
    [GW_ERR_UNAVAILABLE] = {503, "server_error", "all_deployments_unavailable"},
    [GW_ERR_UPSTREAM_TIMEOUT] = {504, "timeout_error", "upstream_timeout"},
    [GW_ERR_MID_STREAM] = {502, "upstream_error", "stream_interrupted"},
};

int errors_status(enum gw_err e)
{
    return err_table[e].status;
}

int errors_render(struct buf *out, enum gw_err e, const char *message, const char *param)
{
    return errors_render_code(out, e, message, param, NULL);
}

int errors_render_code(struct buf *out, enum gw_err e, const char *message, const char *param,
                       const char *code)
{
    const struct err_info *info = &err_table[e];
    buf_append_str(out, "{\"error\":{\"message\":");
    buf_append_json_str(out, message, strlen(message));
    buf_printf(out, ",\"type\":\"%s\",\"param\":", info->type);
    if (param)
        buf_append_json_str(out, param, strlen(param));
    else
        buf_append_str(out, "null");
    buf_printf(out, ",\"code\":\"%s\"}}", code ? code : info->code);
    return info->status;
}
