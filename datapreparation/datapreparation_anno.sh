#!/usr/bin/env bash
# Fetch and extract the official ImageNet-S masks:
#   bash datapreparation_anno.sh DEST {50,300,919,all} [OPTIONS...]  (e.g. --annotations-zip FILE)
# The archive is downloaded into DEST (resumed if interrupted, MD5-checked) unless the masks are all
# there. Honours IMAGENETS_META_DIR, IMAGENETS_RELEASE_URL, IMAGENETS_SKIP_CHECKSUM=1 and PYTHON.
set -euo pipefail

if [ "$#" -lt 2 ]; then
    echo "usage: bash datapreparation_anno.sh DEST {50,300,919,all} [OPTIONS...]" >&2
    exit 2
fi
# The annotation step alone of the full script (it needs no ImageNet folder).
exec bash "$(dirname "${BASH_SOURCE[0]}")/data_preparation.sh" "" "$1" "$2" false \
    --steps annotations "${@:3}"
