#!/usr/bin/env bash
# GPU smoke test: a short annealed DeepScaleR-style run on ONE GPU (about 10 minutes), then
# checks of its records (the heating probe and the sentinel set sampled through TRL's vLLM
# engine), then an evaluation of the final model through vllm.LLM. Needs a CUDA GPU with bf16, `pip install -e ".[llm]" vllm`, and network
# access to download DeepSeek-R1-Distill-Qwen-1.5B and the DeepScaleR data (or a warm HF cache).
# Never run by us: no GPU was available while it was written (docs/llm.md, "What was run where").
#
#   scripts/gpu_smoke.sh [OUT]        # OUT defaults to runs/gpu-smoke
set -euo pipefail
OUT=${1:-runs/gpu-smoke}
if [ -e "$OUT" ]; then echo "error: $OUT exists; give another folder" >&2; exit 2; fi
python - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("error: no CUDA GPU visible")
if not torch.cuda.is_bf16_supported():
    sys.exit("error: this GPU has no bf16 (the smoke config uses bf16 autocast)")
import vllm  # noqa: F401  (fails loudly when vLLM is missing)
PY
conceptweb llm config --config configs/gpu-smoke.yaml | tail -1
time conceptweb llm train --config configs/gpu-smoke.yaml --out "$OUT" -q
conceptweb analyze "$OUT" --no-figures > /dev/null
conceptweb detect "$OUT" --json > "$OUT/detect.json"
conceptweb llm eval --run "$OUT" --model "$OUT/final" --datasets train --k 4 --id-problems 16 \
    --out "$OUT/eval_vllm" 2>&1 | tee "$OUT/eval_vllm.log"
python - "$OUT" <<'PY'
import json, sys
from conceptweb.rundir import RunDir
run = RunDir.open(sys.argv[1])
meta, m, p = run.read_meta(), run.read_metrics(), run.read_problems()
heat = (meta.get("heats") or [{}])[0]
probe = p[p["phase"] == "sft"]
sentinel = p[p["phase"] == "sentinel"]
last_sft = m.loc[m["phase"] == "sft", "step"].max()
evaluated = json.loads(open(f"{sys.argv[1]}/eval_vllm.json").read())["results"]
checks = {
    "finished": meta["status"] == "finished",
    "deepscaler reward": meta.get("reward") == "deepscaler",
    "one heat of 4 steps": len(meta.get("heats", [])) == 1 and (m["phase"] == "sft").sum() == 4,
    "rl rows logged by TRL": bool(m.loc[m["phase"] == "rl", "trl_logged"].fillna(False).all()),
    "rows every other step (2 updates per rollout)": 14 <= (m["phase"] == "rl").sum() <= 20,
    "rewards in [0, 1]": bool(m["reward_mean"].dropna().between(0, 1).all()),
    "per-problem rows": len(p) > 0 and set(p["n"]) == {8},
    "detector replayed": "fired" in json.loads(open(f"{sys.argv[1]}/detect.json").read()),
    "probe sampled with TRL's vLLM engine": heat.get("probe_backend") == "vllm",
    "probe rows: the heated problems at the last heating step": len(probe) > 0
    and len(probe) == min(heat.get("n_problems", 0), 16) and set(probe["step"]) == {last_sft},
    "probe_accuracy on the last heating row": bool(
        m.loc[m["step"] == last_sft, "probe_accuracy"].notna().all()
    ),
    "sentinel baseline at step 0, then every 5 GRPO steps": 0 in set(sentinel["step"])
    and len(sentinel["step"].unique()) >= 4 and set(sentinel.groupby("step").size()) == {16},
    "evaluated with vLLM": "evaluating with vLLM" in open(f"{sys.argv[1]}/eval_vllm.log").read()
    and evaluated[0]["n_problems"] == 16,
}
for name, ok in checks.items():
    print(f"{'ok  ' if ok else 'FAIL'} {name}")
print("reward_mean by step:", m[["step", "phase", "reward_mean"]].to_string(index=False))
sys.exit(0 if all(checks.values()) else 1)
PY
