#!/bin/bash
# Checks the outputs of the other targets, so that a cached PASSED means they were restored whole.
set -euo pipefail

hello="$1"
tree="$2"
summary="$3"
big_digest="$4"

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

[[ "$("$hello" test)" == "hello, test from tessera" ]] || fail "hello printed something else"

[[ -f "$tree/empty.txt" && ! -s "$tree/empty.txt" ]] || fail "empty.txt missing or not empty"
[[ "$(cat "$tree/nested/deeper/two.txt")" == "second level" ]] || fail "nested file wrong"
[[ -x "$tree/nested/run.sh" ]] || fail "run.sh lost its executable bit"

[[ "$(head -n 1 "$summary")" == "1600" ]] || fail "summary line count is not 1600"
[[ "$(wc -c < "$big_digest")" -eq 65 ]] || fail "big digest is not one sha256 line"

echo "all outputs present"
