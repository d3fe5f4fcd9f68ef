#!/usr/bin/env bash
# The one test command, run by `npm test`. It starts Redis and a Ceph RADOS Gateway once for the
# whole run (unless TESSERA_TEST_REDIS_URL / TESSERA_TEST_S3_ENDPOINT name existing ones), runs the
# test files one at a time with node's test runner, and tears the services down afterwards.
#
#   npm test                                   every test/**/*.test.ts
#   npm test -- test/unit test/e2e/foo.test.ts only these directories and files
#   npm test -- --test-name-pattern=multipart  arguments starting with - go to node's test runner
#
# It installs nothing: run scripts/install-test-deps.sh first on a fresh machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

node_flags=()
paths=()
for arg in "$@"; do
  case "$arg" in
    -*) node_flags+=("$arg") ;;
    *) paths+=("$arg") ;;
  esac
done
if [ "${#paths[@]}" -eq 0 ]; then
  paths=(test)
fi

files=()
for path in "${paths[@]}"; do
  if [ -d "$path" ]; then
    while IFS= read -r -d '' file; do
      files+=("$file")
    done < <(find "$path" -type f -name '*.test.ts' -not -path '*/node_modules/*' -print0)
  elif [ -f "$path" ]; then
    files+=("$path")
  else
    echo "scripts/test.sh: no such test file or directory: $path" >&2
    exit 2
  fi
done
if [ "${#files[@]}" -eq 0 ]; then
  echo "scripts/test.sh: no *.test.ts files under: ${paths[*]}" >&2
  exit 1
fi
mapfile -t files < <(printf '%s\n' "${files[@]}" | LC_ALL=C sort -u)

# The AWS SDK's notice that its releases from 2027 on need Node 22 would repeat in every process.
: "${AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED:=true}"
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED

exec node --import tsx test/support/services/run-with-services.ts -- \
  node --import tsx --test --test-concurrency=1 ${node_flags[@]+"${node_flags[@]}"} "${files[@]}"
