#!/usr/bin/env bash
# compose/ without a Docker engine (there is none on the build machines):
#   tests/ops/compose_test.sh SOURCE_DIR
# 1. With every secret .env.example lists filled in, Debian's docker-compose accepts the file
#    (`config -q`), and the rendered file has a healthcheck on every service, API keys on the gateway,
#    pinned image versions (no `latest`), and the Dockerfile builds on pinned Debian images with
#    Debian's own nodejs (no node image).
# 2. Without any one of the secrets — or with none — docker-compose refuses, naming the variable: the
#    file has no default secrets.
set -euo pipefail
src=$(cd "$1" && pwd)
compose=$src/compose/docker-compose.yml
fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
tmp=$(mktemp -d /tmp/rma-compose-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

secrets=(RMA_POSTGRES_PASSWORD RMA_CLIENT_SECRET RMA_ADMIN_KEY RMA_CLIENT_KEY)
# Nothing from the caller's environment may stand in for the env file.
dc() { env -u RMA_POSTGRES_PASSWORD -u RMA_CLIENT_SECRET -u RMA_ADMIN_KEY -u RMA_CLIENT_KEY \
         docker-compose --env-file "$1" -f "$compose" "${@:2}"; }

# .env.example with every empty value filled: what an operator who followed it has.
sed -E 's/^([A-Z_]+)=$/\1=test-value-\1/' "$src/compose/.env.example" >"$tmp/full.env"
for s in "${secrets[@]}"; do
  grep -q "^$s=test-value-$s$" "$tmp/full.env" || fail ".env.example does not list $s with an empty value"
done
dc "$tmp/full.env" config -q || fail "docker-compose config -q refuses the file with every secret set"
dc "$tmp/full.env" config >"$tmp/rendered.yml"
ok "docker-compose config -q accepts the file with the secrets of .env.example"

python3 - "$tmp/rendered.yml" "$src/compose/Dockerfile" <<'EOF'
import re, sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
problems = []
for name, svc in doc["services"].items():
    test = (svc.get("healthcheck") or {}).get("test")
    if not test or svc["healthcheck"].get("disable"):
        problems.append(f"service {name} has no healthcheck")
    image = svc.get("image")
    if image and (":" not in image or image.endswith(":latest") or not re.search(r":v?\d+(\.\d+)+", image)):
        problems.append(f"service {name}: image {image} is not pinned to a version")
env = doc["services"]["gateway"]["environment"]
for key in ("RMA_ADMIN_KEYS", "RMA_CLIENT_KEYS"):
    if not env.get(key):
        problems.append(f"gateway has no {key}")
# Every worker link that leaves the machine is encrypted: CURVE on the broker's worker endpoint, and
# every worker pins the broker's key.
if not doc["services"]["broker"]["environment"].get("RMA_CURVE_SECRET_FILE"):
    problems.append("the broker has no RMA_CURVE_SECRET_FILE: workers would connect in clear text")
for name, svc in doc["services"].items():
    if name.startswith("worker-"):
        wenv = svc.get("environment") or {}
        if not wenv.get("RMA_BROKER_KEY") or wenv.get("RMA_WORKER_TOKEN"):
            problems.append(f"{name} does not use CURVE (RMA_BROKER_KEY, no token)")
dockerfile = open(sys.argv[2]).read()
froms = re.findall(r"^FROM\s+(\S+)", dockerfile, re.M)
for image in froms:
    if ":" in image and not re.fullmatch(r"debian:12\.\d+(-slim)?", image):
        problems.append(f"Dockerfile: base image {image} is not a pinned Debian 12 point release")
if re.search(r"\bnode:", dockerfile):
    problems.append("Dockerfile still takes node from the node image")
if "install-deps.sh --build-only" not in dockerfile or "Release" not in dockerfile:
    problems.append("Dockerfile does not build Release with install-deps.sh --build-only")
if problems:
    print("\n".join("FAIL: " + p for p in problems))
    sys.exit(1)
print(f"ok: {len(doc['services'])} services with healthchecks, keys on the gateway, CURVE workers, pinned images; "
      f"Dockerfile on {', '.join(sorted(set(f for f in froms if ':' in f)))}")
EOF

: >"$tmp/empty.env"
dc "$tmp/empty.env" config -q 2>"$tmp/err" && fail "docker-compose accepted the file without any secret"
ok "refused without secrets: $(tail -c 120 "$tmp/err")"
for s in "${secrets[@]}"; do
  grep -v "^$s=" "$tmp/full.env" >"$tmp/missing.env"
  if dc "$tmp/missing.env" config -q 2>"$tmp/err"; then fail "docker-compose accepted the file without $s"; fi
  grep -q "$s" "$tmp/err" || fail "the refusal without $s does not name it: $(cat "$tmp/err")"
  ok "refused without $s"
done
