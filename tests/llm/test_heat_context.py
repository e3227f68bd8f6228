"""Heating trains in GRPO's context: each SFT example begins with exactly the GRPO prompt."""

from __future__ import annotations

import pytest

from tests.llm.conftest import require_llm_packages, tiny_config

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.llm.data import Problem  # noqa: E402
from conceptweb.llm.heat import sft_examples, sft_rows  # noqa: E402
from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer  # noqa: E402
from conceptweb.llm.rewards import DeepScaleRMathTask  # noqa: E402

# an R1-style template: the generation prompt opens <think>, and an assistant message is
# rendered without it (and without anything before </think>), as R1-Distill's template does
R1_LIKE = (
    "{% for m in messages %}{% if m['role'] == 'user' %}<u> {{ m['content'] }} "
    "{% else %}<a> {{ m['content'].split('</think>')[-1] }} <eos> {% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<a> <think> {% endif %}"
)


def test_sft_examples_begin_with_exactly_the_grpo_prompt(tmp_path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    problems = [Problem(i, f"{i} + 2 =", str(i + 2), f"{i} plus 2 is {i + 2}", i) for i in range(3)]
    words = [p.question for p in problems] + [p.solution or "" for p in problems]
    tok = build_wordlevel_tokenizer(words, ["<u>", "<a>", "<think>", "</think>", "\\boxed{2}"])
    tok.chat_template = R1_LIKE
    cfg = tiny_config(data={"chat": True}).model_copy()
    rows = sft_rows(problems, cfg, thinking=True)
    model = build_scratch_model(cfg.model.scratch, tok, seed=0)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=lambda completions, **kw: [0.0] * len(completions),
        args=GRPOConfig(
            output_dir=str(tmp_path),
            num_generations=2,
            per_device_train_batch_size=2,
            report_to=[],
            use_cpu=True,
            max_completion_length=4,
        ),
        train_dataset=Dataset.from_list([{"prompt": r["prompt"]} for r in rows]),
        processing_class=tok,
    )
    for row, ex in zip(rows, sft_examples(rows, tok), strict=True):
        grpo_ids = list(trainer._tokenize_prompts([row["prompt"]])[0][0])
        assert ex["input_ids"][: len(grpo_ids)] == grpo_ids
        assert ex["completion_mask"] == [0] * len(grpo_ids) + [1] * (
            len(ex["input_ids"]) - len(grpo_ids)
        )
        assert tok.decode(grpo_ids).split()[-1] == "<think>"  # the prompt ends inside thinking
    # the target closes the thinking and boxes the answer after it: DeepScaleR's reward credits it
    target = rows[0]["completion"]
    assert DeepScaleRMathTask().score(target, {"answer": "2"}).correct
    assert sft_rows(problems, cfg, thinking=False)[0]["completion"] == " 0 plus 2 is 2"


def test_own_targets_are_the_models_correct_completions_after_the_grpo_prompt() -> None:
    problems = [Problem(i, f"{i} + 2 =", str(i + 2), f"{i} plus 2 is {i + 2}", i) for i in range(3)]
    own = {0: {"text": " 2", "step": 3}, 2: {"text": " 4", "step": 5}}
    words = [p.question for p in problems] + [p.solution or "" for p in problems] + ["2", "4"]
    tok = build_wordlevel_tokenizer(words)

    def rows_for(targets: str) -> list[dict]:
        cfg = tiny_config(anneal={"heat": {"targets": targets}})
        return sft_rows(problems, cfg, own=own)

    rows = rows_for("own")  # problem 1 has no correct completion of its own: not a target
    assert [(r["completion"], r["source"], r["own_step"]) for r in rows] == [
        (" 2", "own", 3),
        (" 4", "own", 5),
    ]
    mixed = rows_for("own_or_reference")
    assert [r["source"] for r in mixed] == ["own", "reference", "own"]
    assert mixed[1]["completion"] == " 1 plus 2 is 3"
    assert [r["source"] for r in rows_for("reference")] == ["reference"] * 3
    for row, ex in zip(rows, sft_examples(rows, tok), strict=True):  # GRPO's prompt, then it
        prompt = list(tok(text=[row["prompt"]])["input_ids"][0])
        assert ex["input_ids"][: len(prompt)] == prompt
        assert tok.decode(ex["input_ids"][len(prompt) : -1]).strip() == row["completion"].strip()
