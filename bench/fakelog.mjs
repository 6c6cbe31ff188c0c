// bench/fakelog.mjs — what the fake upstreams saw of one run (bench/overload.sh).
// Plain node (20+), no packages.
//
//   node fakelog.mjs --prefix PFX --n N [--out LOADFILE] NAME=LOGFILE ...
//
// Reads the logs of `fakeup --log` (one line per request: ms method path status
// x-request-id body-bytes; the same monotonic clock in every fake) and keeps the
// chat requests whose id is PFX-<number>, i.e. the client requests of this run.
// A client request's first upstream request is the one with the earliest time; any
// later one (on any fake) is an extra attempt: a retry, a hedge or a continuation.
// Prints one line:
//   UPSTREAM requests=U per_client=U/N extra=E first_NAME=F again_NAME=A ... [again_long_NAME=L]
// first_NAME: client requests whose first attempt went to NAME; again_NAME: those of
// them that had another attempt after it (with no errors at NAME: hedges of NAME).
// With --out (the file of `llmload.mjs mix --out`), again_long_NAME / again_short_NAME
// split again_NAME by prompt length, with first_long_NAME / first_short_NAME.
import fs from 'node:fs';

const args = process.argv.slice(2);
function opt(name, dflt) {
    const i = args.indexOf('--' + name);
    return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
}
const prefix = opt('prefix', '');
const n = Number(opt('n', '0'));
const outFile = opt('out', null);
const logs = args.filter((a, i) => a.includes('=') && !(i > 0 && args[i - 1].startsWith('--')));
const idRe = new RegExp('^' + prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '-([0-9]+)$');

const attempts = new Map(); // id -> [{t, name}]
let total = 0;
for (const spec of logs) {
    const [name, file] = spec.split('=');
    let text = '';
    try { text = fs.readFileSync(file, 'utf8'); } catch { continue; }
    for (const line of text.split('\n')) {
        const f = line.split(' ');
        if (f.length < 6 || f[1] !== 'POST' || !f[2].includes('chat/completions') || !idRe.test(f[4])) continue;
        total++;
        if (!attempts.has(f[4])) attempts.set(f[4], []);
        attempts.get(f[4]).push({ t: Number(f[0]), name });
    }
}
const long = new Map();
if (outFile) for (const r of JSON.parse(fs.readFileSync(outFile, 'utf8'))) long.set(r.id, r.long);

const count = {};
const bump = (k) => { count[k] = (count[k] || 0) + 1; };
for (const [id, list] of attempts) {
    list.sort((a, b) => a.t - b.t);
    const first = list[0].name;
    bump('first_' + first);
    if (list.length > 1) bump('again_' + first);
    if (long.has(id)) {
        const kind = long.get(id) ? 'long' : 'short';
        bump(`first_${kind}_${first}`);
        if (list.length > 1) bump(`again_${kind}_${first}`);
    }
}
const names = logs.map((s) => s.split('=')[0]);
const parts = [];
for (const nm of names) {
    parts.push(`first_${nm}=${count['first_' + nm] || 0}`, `again_${nm}=${count['again_' + nm] || 0}`);
    if (outFile)
        for (const kind of ['long', 'short'])
            parts.push(`first_${kind}_${nm}=${count[`first_${kind}_${nm}`] || 0}`,
                       `again_${kind}_${nm}=${count[`again_${kind}_${nm}`] || 0}`);
}
console.log(`UPSTREAM requests=${total} per_client=${n ? (total / n).toFixed(2) : '-'} ` +
    `extra=${total - attempts.size} unseen=${Math.max(0, n - attempts.size)} ${parts.join(' ')}`);
