/*
 * config_tls — the server.tls section: the certificate and key files the
 * listener serves HTTPS with.
 *
 *   server:
 *     tls:
 *       cert: /etc/unbusy/fullchain.pem   # PEM: the certificate, then intermediates
 *       key:  /etc/unbusy/privkey.pem     # PEM, unencrypted
 *
 * config.c puts config_tls_section in the server table. Both keys are
 * required once the section is there; the files are loaded at config load
 * time (so `unbusy --check` catches a missing, unreadable or mismatched pair
 * with the line of the key at fault) and again by tls_server.c when serving
 * and on SIGHUP. The loading itself is TLS's (net/tls_server.c, a layer
 * above this one): the composition root hands it in with
 * config_tls_set_loader; without one only readability is checked. The snapshot keeps only the paths (struct cfg_server
 * tls_cert and tls_key; NULL: plain HTTP); config_free frees them.
 */
#ifndef UNBUSY_CONFIG_TLS_H
#define UNBUSY_CONFIG_TLS_H

#include "config/config.h"
#include "config/config_yaml.h"

/* A loader's verdict: 0, or which file is at fault (err filled). */
enum { CONFIG_TLS_BAD_CERT = -1, CONFIG_TLS_BAD_KEY = -2 };
typedef int (*config_tls_loader)(const char *cert, const char *key, char *err, size_t errlen);
/* Set once, before any config is loaded. */
void config_tls_set_loader(config_tls_loader fn);

/* obj: the struct cfg_server. */
void config_tls_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f);

#endif
