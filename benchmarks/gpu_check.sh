#!/usr/bin/env bash
# One-shot GPU check for a session with a GPU (H100/H200): CUDA-only tests, training-step
# throughput/MFU of csmae-sesd (CSMAE exactly) vs csmoe-b (bf16, eager then compiled), and the whole training step from
# a generated imagery cache (GPU data-wait share). Works offline and without GDAL.
#
#   OUT=/some/dir bash benchmarks/gpu_check.sh      (from the repository root)
#
# Everything lands in $OUT: env.txt, nvidia-smi.txt, steps.tsv (each part: rc, seconds), one log
# per part, pytest.xml, train_step_*.json, train_gpu.json, summary.json and summary.txt.
# Whole run: about 5-8 minutes (GPU_CHECK_BUDGET seconds, default 480; parts that would not fit are
# skipped with a note). See BENCHMARKS.md.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d /tmp/gpu-check.XXXXXX)}
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET:-480}
BATCH=${GPU_CHECK_BATCH:-256}
T0=$(date +%s)
PY=${PYTHON:-python}
: >"$OUT/steps.tsv"

left() { echo $((BUDGET - ($(date +%s) - T0))); }
note() { echo "[gpu_check $(($(date +%s) - T0))s] $*" | tee -a "$OUT/notes.txt"; }

# part NAME MAX_SECONDS MIN_SECONDS CMD...: run CMD under `timeout` (at most MAX_SECONDS and what
# the budget leaves, less a reserve for the summary); skipped when less than MIN_SECONDS remain
part() {
    local name=$1 max=$2 min=$3
    shift 3
    local avail=$(($(left) - 20))
    local lim=$((max < avail ? max : avail))
    if ((lim < min)); then
        note "skip $name: ${avail}s left of the budget, it needs ${min}s"
        printf '%s\tskipped\t0\n' "$name" >>"$OUT/steps.tsv"
        return 0
    fi
    note "run $name (limit ${lim}s): $*"
    local t=$(date +%s)
    timeout --kill-after=10 "$lim" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    printf '%s\t%s\t%s\n' "$name" "$rc" "$(($(date +%s) - t))" >>"$OUT/steps.tsv"
    note "$name: rc=$rc ($(($(date +%s) - t))s); last lines:"
    tail -n 6 "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/notes.txt"
    return 0
}

# ---------------------------------------------------------------- environment
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.max,pcie.link.width.max \
        --format=csv 2>&1 || echo "nvidia-smi failed"
    echo "cpus: $(nproc)"
    $PY -c 'import sys, torch; print("python", sys.version.split()[0]); print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available()); print("device", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")' 2>&1
} >"$OUT/env.txt"
nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true
cat "$OUT/env.txt"
if ! $PY -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    note "no CUDA device visible to torch: the GPU parts below will fail or report CPU figures"
fi

# ---------------------------------------------------------------- install (offline, no deps)
# the package itself without touching dependencies; if that cannot build offline, the source
# tree goes on PYTHONPATH (csmoe_cli is the cli/ folder under another name)
if [[ ${GPU_CHECK_NO_INSTALL:-0} == 1 ]]; then
    note "GPU_CHECK_NO_INSTALL=1: using the installed package"
elif ! timeout 120 $PY -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1; then
    note "pip install -e . failed (offline build?); using the source tree on PYTHONPATH"
    PP=$(mktemp -d /tmp/csmoe-pp.XXXXXX)
    ln -sfn "$PWD/cli" "$PP/csmoe_cli"
    export PYTHONPATH="$PWD:$PP${PYTHONPATH:+:$PYTHONPATH}"
fi
for mod in safetensors tensorboard rich pytest; do
    if ! $PY -c "import $mod" 2>/dev/null; then
        # offline hosts fail fast here (no retries); the parts that need the module are skipped
        timeout 40 $PY -m pip install -q --retries 0 --timeout 5 "$mod" >>"$OUT/install.log" 2>&1 &&
            note "installed $mod" || note "$mod missing and not installable: parts needing it are skipped"
    fi
done

# ---------------------------------------------------------------- CUDA tests
if $PY -c "import pytest" 2>/dev/null; then
    part tests 170 60 $PY -m pytest -q -p no:cacheprovider -m "not slow" -rs \
        --junitxml="$OUT/pytest.xml" tests/csmoe_model/models/test_model_gpu_paths.py tests/csmoe_model/train/test_training_gpu_paths.py
else
    # no pytest: the same CUDA paths through a direct smoke check
    part smoke 120 30 $PY - <<'EOF'
import torch
from csmoe_model import build_model
from csmoe_model.train.config import TrainConfig
from csmoe_model.train.schedule import build_optimizer
dev = torch.device("cuda:0")
torch.manual_seed(0)
m = build_model("csmoe-tiny").to(dev)
opt = build_optimizer(m, TrainConfig(lr=1e-3), dev)
assert opt.defaults["fused"]
s1, s2 = torch.randn(8, 2, 32, 32, device=dev), torch.randn(8, 12, 32, 32, device=dev)
torch.cuda.synchronize()
torch.cuda.set_sync_debug_mode("error")
with torch.autocast("cuda", dtype=torch.bfloat16):
    out = m(s1, s2)
out.loss.backward()
opt.step()
torch.cuda.set_sync_debug_mode(0)
print("smoke ok, loss", float(out.loss))
EOF
fi

# ---------------------------------------------------------------- training step: eager bf16
part step_eager 170 60 $PY benchmarks/bench_train_step.py --device cuda --batch "$BATCH" \
    --steps 20 --warmup 5 --compile off --json "$OUT/train_step_eager.json"

# ---------------------------------------------------------------- whole step from the cache
part train_gpu 150 45 $PY benchmarks/bench_train_gpu.py --device cuda --model csmoe-b --batch "$BATCH" \
    --steps 40 --pairs 4096 --workers "$(($(nproc) > 13 ? 12 : $(nproc) - 1))" \
    --cache-dir "${TMPDIR:-/tmp}/csmoe-gpu-cache" --json "$OUT/train_gpu.json"

# ---------------------------------------------------------------- eager at twice the batch
# larger batches amortise what scales with parameters (optimizer, weight casts), where csmoe-b
# (2.6x the parameters) pays more
part step_eager_2x 130 70 $PY benchmarks/bench_train_step.py --device cuda --batch "$((2 * BATCH))" \
    --steps 15 --warmup 4 --compile off --json "$OUT/train_step_eager_2x.json"

# ---------------------------------------------------------------- training step: compiled
part step_compiled 240 120 $PY benchmarks/bench_train_step.py --device cuda --batch "$BATCH" \
    --steps 20 --warmup 3 --compile on --json "$OUT/train_step_compiled.json"

# ---------------------------------------------------------------- summary
$PY - "$OUT" <<'EOF' 2>&1 | tee "$OUT/summary.txt"
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
summary = {"steps": {}, "train_step": {}, "train_gpu": None, "tests": None}
for line in (out / "steps.tsv").read_text().splitlines():
    name, rc, secs = line.split("\t")
    summary["steps"][name] = {"rc": rc, "seconds": int(secs)}
print("parts:", ", ".join(f"{k} rc={v['rc']} ({v['seconds']}s)" for k, v in summary["steps"].items()))
if (out / "pytest.xml").is_file():
    s = ET.parse(out / "pytest.xml").getroot()
    s = s if s.tag == "testsuite" else s.find("testsuite")
    t = {k: int(s.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    summary["tests"] = t
    print(f"tests: {t['tests']} run, {t['failures']} failed, {t['errors']} errors, {t['skipped']} skipped")
for mode in ("eager", "eager_2x", "compiled"):
    f = out / f"train_step_{mode}.json"
    if not f.is_file():
        print(f"train step ({mode}): no result")
        continue
    d = json.loads(f.read_text())
    if not d["results"]:
        print(f"train step ({mode}): no model finished")
    rows = {r["model"]: r for r in d["results"]}
    for fail in d.get("failed", []):
        print(f"train step ({mode}): {fail['model']} failed: {fail['error'][:120]}")
    summary["train_step"][mode] = {"device": d["device"], **rows}
    batch = next(iter(rows.values()))["batch"] if rows else "?"
    print(f"train step ({mode}, bf16, batch {batch}) on {d['device']}:")
    for name, r in rows.items():
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
        print(f"  {name:8s} {r['pairs_per_s']:9.1f} pairs/s  {r['step_ms']:7.1f} ms/step  MFU {mfu}  peak {r['peak_mem_gib']:.1f} GiB")
    if "csmae-sesd" in rows and "csmoe-b" in rows:
        ratio = rows["csmoe-b"]["pairs_per_s"] / rows["csmae-sesd"]["pairs_per_s"]
        summary["train_step"][mode]["ratio_csmoe_over_csmae"] = ratio
        mfu = rows["csmoe-b"].get("mfu")
        print(f"  csmoe-b / csmae-sesd = {ratio:.2f}x (goal >= 1.6x); csmoe-b MFU {100 * mfu if mfu else float('nan'):.1f}% (goal >= 35%)")
f = out / "train_gpu.json"
if f.is_file():
    d = json.loads(f.read_text())
    summary["train_gpu"] = d
    mfu = f"{100 * d['mfu_loader']:.1f}%" if d.get("mfu_loader") else "n/a"
    print(f"whole step from the cache ({d['model']}, batch {d['batch']}, {d['workers']} workers): "
          f"{d['pairs_per_s_loader']:.0f} pairs/s (no data: {d['pairs_per_s_no_data']:.0f}), MFU {mfu}, "
          f"GPU data-wait {100 * d['gpu_data_wait_share']:.1f}% (goal < 5%)")
else:
    print("whole step from the cache: no result")
(out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
EOF
note "done in $(($(date +%s) - T0))s; results in $OUT"
