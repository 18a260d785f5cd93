#!/usr/bin/env bash
# Copy the training data a device call needs into .gpu-data/ (git-ignored here, named in the
# device tool's `carry`): the ../shared beside the checkout does not travel to the GPU machine.
# Only the files the propagation campaign reads (about 9.5 MB; the call's limit is 64 MiB with
# the working tree, which is about 54 MB).
set -euo pipefail
cd "$(dirname "$0")/.."
data=${DATA:-../shared/data}
mkdir -p .gpu-data/isbi2012 .gpu-data/gala_fibsem_medulla
cp "$data"/isbi2012/{train-volume.tif,train-instances-3d.tif} .gpu-data/isbi2012/
cp "$data"/gala_fibsem_medulla/{train-image.tif,train-gt.tif} .gpu-data/gala_fibsem_medulla/
grep -qx "/.gpu-data/" .git/info/exclude 2>/dev/null || echo "/.gpu-data/" >> .git/info/exclude
du -sh .gpu-data
