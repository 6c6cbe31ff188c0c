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
 * and on SIGHUP. The snapshot keeps only the paths (struct cfg_server
 * tls_cert and tls_key; NULL: plain HTTP); config_free frees them.
 */
#ifndef UNBUSY_CONFIG_TLS_H
#define UNBUSY_CONFIG_TLS_H

#include "config/config.h"
#include "config/config_yaml.h"

/* obj: the struct cfg_server. */
void config_tls_section(struct config_yaml_loader *ld, yaml_node_t *v, void *obj,
                        const struct config_yaml_field *f);

#endif
