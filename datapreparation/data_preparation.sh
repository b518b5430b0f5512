#!/usr/bin/env bash
# Build ImageNet-S from ImageNet-1k, as the original toolbox's script does:
#   bash data_preparation.sh IMAGENET DEST {50,300,919,all} {false,true} [OPTIONS...]
# (4th argument: true copies the train images instead of linking them; OPTIONS, such as
# --workers 8, --quiet or --meta-dir DIR, go to every step). All sources are checked
# before anything is written, and a rerun completes an interrupted run. Honours IMAGENETS_META_DIR,
# IMAGENETS_RELEASE_URL, IMAGENETS_SKIP_CHECKSUM=1 and PYTHON (the interpreter to use).
set -euo pipefail

if [ "$#" -lt 4 ]; then
    echo "usage: bash data_preparation.sh IMAGENET DEST {50,300,919,all} {false,true} [OPTIONS...]" >&2
    exit 2
fi
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-$(command -v python || command -v python3)}"
case "$4" in
    true) copy=(--copy) ;;
    false) copy=() ;;
    *) echo "error: the 4th argument (copy) must be true or false, not '$4'" >&2; exit 2 ;;
esac

imagenet="$1" dest="$2" mode="$3"
shift 4
# One process for all steps (train, validation, test, train-semi, annotations): every source is
# checked before anything is written. The repository root goes first on the path so that a clone
# works without being installed; `exec` makes the pid the wrapper was started with that of Python
# (a kill reaches prepare), and the umbrella names a missing dependency in one line.
PYTHONPATH="$(dirname "$here")${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m imagenets prepare \
    --imagenet-dir "$imagenet" --save-dir "$dest" --mode "$mode" "${copy[@]+"${copy[@]}"}" "$@"
