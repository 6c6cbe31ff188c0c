// The deploy/ files: every manifest parses, and what they name exists — the
// port the config listens on, the probe paths (answered by a running gateway),
// the metrics (in docs/metrics.md and on /metrics), the files they mount —
// the config in the ConfigMap and the image's config pass `unbusy --check`, and
// every grace period covers drain_delay + drain_timeout. The image itself is
// built by deploy/build-image.sh when a container engine is there.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments, parse as parseYAML } from 'yaml';
import { ROOT, harness, runGateway, writeTemp } from './lib.mjs';

const DEPLOY = path.join(ROOT, 'deploy');
const read = (p) => readFileSync(path.join(DEPLOY, p), 'utf8');

function docs(p) {
    const out = parseAllDocuments(read(p));
    for (const d of out) assert.deepEqual(d.errors, [], `${p}: ${d.errors.map(String).join('; ')}`);
    return out.map((d) => d.toJS()).filter(Boolean);
}

const K8S = readdirSync(path.join(DEPLOY, 'kubernetes')).filter((f) => /\.ya?ml$/.test(f));
const all = K8S.flatMap((f) => docs(`kubernetes/${f}`).map((d) => ({ file: f, ...d })));
const find = (kind, name) => all.find((d) => d.kind === kind && (!name || d.metadata?.name === name));

function durationS(v) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(String(v));
    assert.ok(m, `not a duration: ${v}`);
    return Number(m[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[m[2]];
}

/* drain_delay + drain_timeout of a config (the defaults, 5 s and 30 s, when not set). */
function stopSeconds(cfg) {
    return durationS(cfg.server?.drain_delay ?? '5s') + durationS(cfg.server?.drain_timeout ?? '30s');
}

const configMap = find('ConfigMap', 'unbusy-config');
const cmText = configMap?.data?.['unbusy.yaml'];
const cmConfig = cmText && parseYAML(cmText);
const imageConfig = parseYAML(read('unbusy.yaml'));
const portOf = (cfg) => Number(/:(\d+)$/.exec(cfg.server.listen)[1]);

/* Every ${VAR} of a config text set to a placeholder, as the Secret would. */
function placeholderEnv(text) {
    return Object.fromEntries([...text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => [m[1], `sk-placeholder-${m[1]}`]));
}

test('every Kubernetes, compose, Prometheus and Grafana file parses', () => {
    assert.ok(K8S.length >= 7, `only ${K8S.join(', ')}`);
    for (const d of all.filter((x) => x.kind !== 'Kustomization')) {
        assert.ok(d.apiVersion && d.kind && d.metadata?.name, `${d.file}: a document without apiVersion/kind/name`);
    }
    for (const kind of ['Deployment', 'Service', 'ConfigMap', 'PodDisruptionBudget', 'HorizontalPodAutoscaler']) {
        assert.ok(find(kind), `no ${kind}`);
    }
    assert.ok(find('Deployment', 'unbusy-redis') && find('Service', 'unbusy-redis'), 'no Redis Deployment and Service');
    for (const p of ['compose/compose.yaml', 'compose/prometheus/prometheus.yml',
        'compose/grafana/provisioning/datasources/prometheus.yaml',
        'compose/grafana/provisioning/dashboards/unbusy.yaml', 'unbusy.yaml', 'compose/unbusy.yaml']) docs(p);
    const kust = parseYAML(read('kubernetes/kustomization.yaml'));
    for (const r of kust.resources) assert.ok(existsSync(path.join(DEPLOY, 'kubernetes', r)), `kustomization names ${r}`);
});

test('the ConfigMap\'s, the image\'s and compose\'s configs pass unbusy --check', async () => {
    assert.ok(cmText, 'no unbusy.yaml in the ConfigMap');
    const r = await runGateway(['--check', '--config', writeTemp('configmap.yaml', cmText)], { env: placeholderEnv(cmText) });
    assert.equal(r.code, 0, r.output);
    assert.doesNotMatch(r.output, /sk-placeholder/, 'a key was printed');
    for (const f of ['unbusy.yaml', 'compose/unbusy.yaml']) {
        const i = await runGateway(['--check', '--config', path.join(DEPLOY, f)]);
        assert.equal(i.code, 0, `${f}: ${i.output}`);
    }
    // the replicas' shared state points at the Redis Services defined beside them
    assert.equal(cmConfig.redis.url, `redis://${find('Service', 'unbusy-redis').metadata.name}:${find('Service', 'unbusy-redis').spec.ports[0].port}`);
    assert.equal(parseYAML(read('compose/unbusy.yaml')).redis.url, 'redis://redis:6379');
});

test('the Deployment: ports, probes, selectors, grace period and the config mount agree', () => {
    const dep = find('Deployment', 'unbusy');
    const pod = dep.spec.template.spec;
    const c = pod.containers.find((x) => x.name === 'unbusy');
    const port = c.ports.find((p) => p.name === 'http');
    assert.equal(port.containerPort, portOf(cmConfig), 'containerPort is not the port the config listens on');
    assert.match(cmConfig.server.listen, /^0\.0\.0\.0:|^\[::\]:|^:/, 'the config in a pod must listen on every interface');
    assert.deepEqual(dep.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'unbusy' });
    for (const [k, v] of Object.entries(dep.spec.selector.matchLabels)) assert.equal(dep.spec.template.metadata.labels[k], v);
    assert.equal(c.readinessProbe.httpGet.path, '/readyz');
    assert.equal(c.livenessProbe.httpGet.path, '/healthz');
    for (const p of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
        assert.ok(p.httpGet.port === 'http' || p.httpGet.port === port.containerPort, 'a probe on another port');
    }
    assert.equal(dep.spec.template.metadata.annotations['prometheus.io/port'], String(port.containerPort));
    assert.equal(dep.spec.template.metadata.annotations['prometheus.io/path'], '/metrics');
    const grace = pod.terminationGracePeriodSeconds;
    const need = stopSeconds(cmConfig) + (c.lifecycle?.preStop?.sleep?.seconds ?? 0);
    assert.ok(grace >= need, `terminationGracePeriodSeconds ${grace} < drain_delay + drain_timeout ${need}`);
    assert.ok(grace <= need + 15, `terminationGracePeriodSeconds ${grace} far above ${need}: a stuck pod lingers`);
    assert.equal(dep.spec.strategy.rollingUpdate.maxUnavailable, 0);
    // the config file: the ConfigMap mounted where args point, as a directory (no subPath: updates arrive)
    const cfgArg = c.args[c.args.indexOf('--config') + 1];
    const mount = c.volumeMounts.find((m) => cfgArg.startsWith(m.mountPath + '/'));
    assert.ok(mount, `nothing mounted at ${cfgArg}`);
    assert.equal(mount.subPath, undefined, 'a subPath mount never sees ConfigMap updates');
    assert.equal(cmConfig.reload?.watch, true, 'the ConfigMap\'s config does not watch its file');
    const vol = pod.volumes.find((v) => v.name === mount.name);
    assert.equal(vol.configMap.name, configMap.metadata.name);
    assert.equal(path.basename(cfgArg), 'unbusy.yaml');
    assert.equal(c.securityContext.allowPrivilegeEscalation, false);
    assert.ok(pod.securityContext.runAsNonRoot);
    // every ${VAR} of the config comes from the environment the pod is given
    assert.ok(c.envFrom.some((e) => e.secretRef), 'provider keys: no secretRef');
});

test('Service, PodDisruptionBudget, HPA and the adapter name what exists', () => {
    const dep = find('Deployment', 'unbusy');
    const svc = find('Service', 'unbusy');
    assert.deepEqual(svc.spec.selector, dep.spec.selector.matchLabels);
    const containerPorts = dep.spec.template.spec.containers[0].ports.map((p) => p.name);
    for (const p of svc.spec.ports) assert.ok(containerPorts.includes(p.targetPort), `Service targetPort ${p.targetPort}`);
    const pdb = find('PodDisruptionBudget');
    assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
    assert.ok(pdb.spec.minAvailable < dep.spec.replicas, 'the PDB would block every eviction');
    const hpa = find('HorizontalPodAutoscaler');
    assert.equal(hpa.spec.scaleTargetRef.name, dep.metadata.name);
    assert.equal(hpa.spec.scaleTargetRef.kind, 'Deployment');
    assert.ok(hpa.spec.minReplicas >= 2);
    assert.ok(hpa.spec.metrics.some((m) => m.type === 'Resource' && m.resource.name === 'cpu'));
    const redisSvc = find('Service', 'unbusy-redis');
    assert.deepEqual(redisSvc.spec.selector, find('Deployment', 'unbusy-redis').spec.selector.matchLabels);
});

/* Metric names the deploy files use: HPA pods metrics, the adapter's queries, the compose alerting rules. */
function metricNames() {
    const names = new Set();
    for (const m of find('HorizontalPodAutoscaler').spec.metrics) if (m.type === 'Pods') names.add(m.pods.metric.name);
    const adapter = parseYAML(find('ConfigMap', 'unbusy-adapter-rules').data['config.yaml']);
    for (const r of adapter.rules) for (const n of r.seriesQuery.match(/\bunbusy_[a-z_]+/g)) names.add(n);
    return [...names];
}

test('the systemd unit, the compose file and the Dockerfile agree with the configs', () => {
    const unit = read('systemd/unbusy.service');
    const kv = (k) => [...unit.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((m) => m[1]);
    assert.deepEqual(kv('Type'), ['notify']);
    assert.match(kv('ExecStart')[0], /^\/usr\/local\/bin\/unbusy --config \/etc\/unbusy\/unbusy\.yaml$/);
    assert.ok(Number(kv('TimeoutStopSec')[0]) >= stopSeconds(imageConfig), 'TimeoutStopSec below the drain');
    assert.deepEqual(kv('NoNewPrivileges'), ['yes']);
    const compose = parseYAML(read('compose/compose.yaml'));
    for (const s of ['unbusy', 'redis', 'prometheus', 'grafana']) assert.ok(compose.services[s], `compose: no ${s}`);
    const u = compose.services.unbusy;
    assert.ok(durationS(u.stop_grace_period) >= stopSeconds(imageConfig), 'stop_grace_period below the drain');
    assert.ok(u.ports.some((p) => String(p).endsWith(`:${portOf(imageConfig)}`)), 'compose maps another port');
    assert.equal(path.resolve(DEPLOY, 'compose', u.build.context, u.build.dockerfile), path.join(DEPLOY, 'Dockerfile'));
    for (const s of Object.values(compose.services)) {
        for (const v of s.volumes || []) {
            const src = v.split(':')[0];
            assert.ok(existsSync(path.resolve(DEPLOY, 'compose', src)), `compose mounts ${src}, which is not there`);
        }
    }
    const prom = parseYAML(read('compose/prometheus/prometheus.yml'));
    assert.deepEqual(prom.scrape_configs[0].static_configs[0].targets, [`unbusy:${portOf(imageConfig)}`]);
    assert.equal(prom.scrape_configs[0].metrics_path, '/metrics');
    const rulesMount = compose.services.prometheus.volumes.find((v) => v.includes('unbusy-rules.yml'));
    assert.ok(rulesMount && prom.rule_files.includes(rulesMount.split(':')[1]), 'the alert rules are not loaded');
    const df = read('Dockerfile');
    const stages = [...df.matchAll(/^FROM\s+(\S+)/gm)].map((m) => m[1]);
    assert.ok(stages.length >= 2, 'not a multi-stage build');
    assert.equal(stages.at(-1), 'debian:bookworm-slim');
    const user = [...df.matchAll(/^USER\s+(\S+)/gm)].map((m) => m[1]).at(-1);
    assert.ok(user && !/^(0|root)(:|$)/.test(user), `runs as ${user}`);
    assert.match(df, /^HEALTHCHECK [^\n]*(\\\n[^\n]*)*\/healthz/m);
    assert.match(df, new RegExp(`^EXPOSE ${portOf(imageConfig)}$`, 'm'));
    assert.match(df, new RegExp(`/dev/tcp/127\\.0\\.0\\.1/${portOf(imageConfig)}`));
    assert.match(df, /^COPY deploy\/unbusy\.yaml \/etc\/unbusy\/unbusy\.yaml$/m);
});

test('a gateway on the image\'s config answers the probe paths and exports every metric the deploy files use', async (t) => {
    const h = harness(t);
    const cfg = structuredClone(imageConfig);
    cfg.server = { ...cfg.server, listen: '127.0.0.1:0', drain_delay: '0s' };
    const gw = await h.gateway({ config: cfg });
    for (const p of ['/healthz', '/readyz', '/metrics']) {
        assert.equal((await gw.request(p)).status, 200, `${p} did not answer 200`);
    }
    // one request so that per-request families have samples
    await gw.client().chat.completions.create({ model: 'deepseek-v3', messages: [{ role: 'user', content: 'hi' }] });
    const scrape = (await gw.request('/metrics')).text;
    const docsText = readFileSync(path.join(ROOT, 'docs/metrics.md'), 'utf8');
    const names = metricNames();
    assert.ok(names.includes('unbusy_inflight_requests'), names.join(','));
    for (const n of names) {
        assert.match(docsText, new RegExp(`\`${n}\``), `${n} is not in docs/metrics.md`);
        assert.match(scrape, new RegExp(`^${n}(\\{| )`, 'm'), `${n} is not on /metrics`);
    }
    // the dashboard and the rules mounted by compose are the project's own
    const rules = parseYAML(readFileSync(path.join(DEPLOY, 'prometheus/unbusy-rules.yml'), 'utf8'));
    assert.ok(rules.groups.length > 0);
    JSON.parse(readFileSync(path.join(DEPLOY, 'grafana/unbusy.json'), 'utf8'));
    await gw.stop();
});
