#!/usr/bin/env bash
# The operator image's size where no container engine is available: the Dockerfile's /opt/venv
# rebuilt here (CPU torch first, then the package, no dev extras, no caches, no __pycache__),
# measured with du. The image adds the python:3.11-slim base (about 130 MB uncompressed) and a
# user. Usage: bash benchmarks/image_size.sh [VENV_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-/tmp/forecastscaler-image-venv}"
rm -rf "$venv"
python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/pip" install -q torch==2.13.0 >&2
"$venv/bin/pip" install -q . >&2
find "$venv" -name '__pycache__' -prune -exec rm -rf {} +
echo "venv (what the image's /opt/venv holds): $(du -sh "$venv" | cut -f1)"
echo "largest packages:"
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
du -s "$site"/* 2>/dev/null | sort -rn | head -12 | while read -r kb path; do
  printf '  %8.1f MB  %s\n' "$(echo "$kb / 1024" | bc -l)" "$(basename "$path")"
done
"$venv/bin/forecastscaler" --help >/dev/null && echo "entrypoint: forecastscaler runs"
