#!/bin/sh
# The layering rule of docs/architecture.md, checked on the sources:
#
#   - every #include "..." in src/ names a file that exists, by its path under src/;
#   - a file in src/LAYER/ includes only its own layer and layers below it, in the
#     order of LAYERS below (so no include cycle can cross two folders);
#   - nothing in a layer includes the composition root (src/*.h).
#
# Prints each violation as "file: includes X (why)" and exits 1 if there is one.
# Run from anywhere; `make test` runs it.

LAYERS="base proto config net sim provider acct admit route obs http proxy api cmd"

cd "$(dirname "$0")/../../src" || exit 1
find . -name '*.[ch]' | sed 's|^\./||' | sort | while read -r f; do
    grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
        sed 's/^\([0-9]*\):.*include[[:space:]]*"\([^"]*\)".*/\1 \2/' |
        while read -r line inc; do echo "$f $line $inc"; done
done | awk -v layers="$LAYERS" '
BEGIN {
    n = split(layers, L, " ")
    for (i = 1; i <= n; i++) rank[L[i]] = i
    bad = 0
}
function layer_of(path,   k) {
    k = index(path, "/")
    return k ? substr(path, 1, k - 1) : "."
}
{
    file = $1; line = $2; inc = $3
    if ((getline dummy < inc) < 0) {
        printf "%s:%s: includes \"%s\", which is not a file under src/\n", file, line, inc
        bad = 1; next
    }
    close(inc)
    from = layer_of(file); to = layer_of(inc)
    if (from == ".") next                          # the composition root may include anything
    if (!(from in rank)) { printf "%s: layer \"%s\" is not in LAYERS\n", file, from; bad = 1; next }
    if (to == ".") {
        printf "%s:%s: includes \"%s\" from the composition root\n", file, line, inc
        bad = 1; next
    }
    if (!(to in rank)) { printf "%s:%s: includes \"%s\", layer \"%s\" is not in LAYERS\n", file, line, inc, to; bad = 1; next }
    if (rank[to] > rank[from]) {
        printf "%s:%s: includes \"%s\": layer %s may not include %s, which is above it\n", file, line, inc, from, to
        bad = 1
    }
}
END { exit bad }
'
