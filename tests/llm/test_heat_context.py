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
