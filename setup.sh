#!/usr/bin/env bash
# Set up everything on a fresh machine: the bundled demo datasets (Debian packages, where apt is
# available), a virtual environment in .venv, PyTorch, and this package with all its extras.
# Safe to run again: what is already installed is kept.
set -euo pipefail
cd "$(dirname "$0")"

# Real data that ships with Debian: Fashion-MNIST (the default training run), sound samples
# (audio demo), CGAL's meshes (point-cloud demo), Ferret's monthly global winds (grid forecasting demo),
# Sweet Home 3D's furniture models (furniture point clouds) and Tux Paint's spoken stamp descriptions
# (spoken-language identification).
DEBIAN_DATA="dataset-fashion-mnist sonic-pi-samples hydrogen-data libcgal-demo ferret-datasets sweethome3d-furniture tuxpaint-stamps-default"
# Packages whose data is only unpacked (dpkg -x, no dependencies) into the cache folder that
# unireplknet.data.sources looks in: installing r-cran-gstat (Irish station winds) would pull in R.
DEBIAN_UNPACK="r-cran-gstat"
DEBIAN_DIR="${UNIREPLKNET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/unireplknet}/debian"
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if ! dpkg -s $DEBIAN_DATA >/dev/null 2>&1; then
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $DEBIAN_DATA >/dev/null; } \
      || echo "setup: could not install $DEBIAN_DATA with apt; pass --data DIR to the demos instead" >&2
  fi
  for pkg in $DEBIAN_UNPACK; do
    stamp="$DEBIAN_DIR/.$pkg.unpacked"
    [ -f "$stamp" ] && continue
    tmp="$(mktemp -d)"
    # apt-get download needs package lists: refresh them once if the first try finds none.
    if { (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null) \
         || { $SUDO apt-get update -qq && (cd "$tmp" && apt-get download -qq "$pkg" 2>/dev/null); }; } \
       && mkdir -p "$DEBIAN_DIR" && dpkg -x "$tmp"/"$pkg"_*.deb "$DEBIAN_DIR"; then
      touch "$stamp"
    else
      echo "setup: could not unpack $pkg into $DEBIAN_DIR; pass --data DIR to its demo instead" >&2
    fi
    rm -rf "$tmp"
  done
else
  echo "setup: no apt-get here; the demos need --data DIR (see README, 'Data')" >&2
fi

PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# The PyTorch build to use; the default is the one these machines carry on disk. Override with
# e.g. TORCH_SPEC="torch torchvision" on other machines.
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1}"
.venv/bin/python -c "import torch, torchvision" 2>/dev/null || .venv/bin/pip install -q $TORCH_SPEC
.venv/bin/pip install -q -e ".[all]"

# timm's own model tests (tests/test_models.py of the installed timm's source distribution), which the test
# suite runs on our variants (tests/test_timm_suite.py): fetched from the package registry, never committed.
TIMM_VERSION="$(.venv/bin/python -c 'import timm; print(timm.__version__)')"
if [ ! -f ".cache/timm-$TIMM_VERSION/tests/test_models.py" ]; then
  mkdir -p .cache
  .venv/bin/pip download -q --no-binary :all: --no-deps "timm==$TIMM_VERSION" -d .cache \
    && tar -xzf ".cache/timm-$TIMM_VERSION.tar.gz" -C .cache "timm-$TIMM_VERSION/tests" \
    || echo "setup: could not fetch timm $TIMM_VERSION's tests; tests/test_timm_suite.py will say so" >&2
fi
echo "setup: done (.venv/bin/unireplknet, .venv/bin/pytest)"
