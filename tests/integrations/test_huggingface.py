"""Tiny Hugging Face models built from configs (no download) against hand extraction."""

from __future__ import annotations

import json
import types
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")

from neuralcollapse import measure  # noqa: E402
from neuralcollapse.integrations import measure_model  # noqa: E402
from neuralcollapse.integrations.huggingface import (  # noqa: E402
    NeuralCollapseCallback,
    NoMeasurementWarning,
)

VOCAB, LENGTH, NUM_LABELS = 30, 8, 3


def _inputs(n=48, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, VOCAB, (n, LENGTH), generator=generator)
    mask = torch.ones(n, LENGTH, dtype=torch.long)
    mask[::3, 5:] = 0  # padded sequences
    return ids, mask


def _bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=NUM_LABELS,
        max_position_embeddings=LENGTH,
    )
    return transformers.BertForSequenceClassification(config).double().eval()


def _gpt2():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=LENGTH,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config).double().eval()


def _close(result, expected, tolerance=1e-10):
    for key, value in expected.to_dict().items():
        got = result.to_dict()[key]
        assert (got is None) == (value is None), key
        if value is not None:
            assert got == pytest.approx(value, rel=tolerance, abs=tolerance), key


def test_bert_sequence_classification_with_attention_mask_equals_hand_extraction():
    model = _bert()
    ids, mask = _inputs()
    labels = torch.arange(len(ids)) % NUM_LABELS
    batches = [
        {
            "input_ids": ids[i : i + 16],
            "attention_mask": mask[i : i + 16],
            "labels": labels[i : i + 16],
        }
        for i in range(0, len(ids), 16)
    ]
    result = measure_model(
        model, batches, layers=["bert.encoder.layer.1", "penultimate"], classifier="classifier"
    )
    with torch.no_grad():
        out = model.bert(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    hidden = out.hidden_states[2]  # output of encoder layer 1
    weights = mask.unsqueeze(-1).double()
    pooled_tokens = (hidden * weights).sum(1) / weights.sum(1)  # mean over real tokens only
    _close(result["bert.encoder.layer.1"], measure(pooled_tokens, labels))
    head = model.classifier
    _close(
        result["penultimate"],
        measure(out.pooler_output, labels, head.weight.detach(), head.bias.detach()),
    )


def test_gpt2_next_token_collapse_drops_padding_and_the_ignore_index():
    model = _gpt2()
    ids, mask = _inputs()
    ids = ids % 20  # vocabulary entries 20..29 never occur: their classes are dropped
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))  # HF: unshifted labels
    labels[:, 2] = -100  # some positions without a target
    batches = [
        {
            "input_ids": ids[i : i + 12],
            "attention_mask": mask[i : i + 12],
            "labels": labels[i : i + 12],
        }
        for i in range(0, len(ids), 12)
    ]
    result = measure_model(
        model,
        batches,
        layers=["transformer.h.0", "penultimate"],
        classifier="lm_head",
        shift_labels=True,
        empty_classes="drop",
    )
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    # position t is labelled by the token at t + 1; keep pairs where both are real and t+1 has
    # a target
    targets = labels[:, 1:]
    keep = (targets != -100) & mask[:, :-1].bool() & mask[:, 1:].bool()
    token_labels = targets[keep]
    present = torch.unique(token_labels)
    remap = torch.full((VOCAB,), -1, dtype=torch.long)
    remap[present] = torch.arange(len(present))
    assert torch.equal(result.classes, present)
    layer0 = out.hidden_states[1][:, :-1][keep]
    final = out.hidden_states[-1][:, :-1][keep]  # after ln_f: the input of lm_head
    _close(result["transformer.h.0"], measure(layer0, remap[token_labels]))
    weights = model.lm_head.weight.detach()[present]
    _close(result["penultimate"], measure(final, remap[token_labels], weights))


def test_token_labels_with_empty_vocabulary_classes_say_to_drop_them():
    model = _gpt2()
    ids, mask = _inputs(n=4)
    with pytest.raises(ValueError, match="no samples"):
        measure_model(
            model, [{"input_ids": ids, "labels": ids}], classifier="lm_head", shift_labels=True
        )


def test_trainer_callback_logs_what_measure_model_gives_on_the_final_model(tmp_path):
    model = _bert().float()
    ids, mask = _inputs(n=36)
    labels = torch.arange(len(ids)) % NUM_LABELS
    rows = [
        {"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]}
        for i in range(len(ids))
    ]
    loader = torch.utils.data.DataLoader(rows, batch_size=12)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=12,
        eval_strategy="epoch",
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=rows, eval_dataset=rows)
    callback = NeuralCollapseCallback(
        loader, layers=["penultimate"], classifier="classifier", run_dir=tmp_path / "run"
    ).attach(trainer)
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "nc/train/penultimate/nc1" in entry]
    assert len(logged) == 2  # one per evaluation
    expected = measure_model(model, loader, layers=["penultimate"], classifier="classifier")
    assert logged[-1]["nc/train/penultimate/nc1"] == pytest.approx(
        expected["penultimate"].nc1, rel=1e-6
    )
    assert logged[-1]["nc/train/penultimate/etf_gap_weights"] == pytest.approx(
        expected["penultimate"].etf_gap_weights, rel=1e-6
    )
    assert callback.tracker is not None
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") == 2


# ----------------------------------------------------------------------------- when and what


def _trainer(tmp_path, rows, eval_dataset=None, **arguments):
    options = dict(
        output_dir=str(tmp_path / "hf"),
        num_train_epochs=2,
        per_device_train_batch_size=12,
        eval_strategy="no",
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    options.update(arguments)
    args = transformers.TrainingArguments(**options)
    return transformers.Trainer(
        model=_bert().float(), args=args, train_dataset=rows, eval_dataset=eval_dataset
    )


def _rows(n=36):
    ids, mask = _inputs(n=n)
    labels = torch.arange(n) % NUM_LABELS
    return [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(n)]


def _logged(trainer, key="nc/train/penultimate/nc1"):
    return [entry for entry in trainer.state.log_history if key in entry]


def test_without_evaluation_it_measures_at_the_end_of_each_epoch(tmp_path):
    rows = _rows()
    loader = torch.utils.data.DataLoader(rows, batch_size=12)
    trainer = _trainer(tmp_path, rows)
    callback = NeuralCollapseCallback(
        loader, classifier="classifier", run_dir=tmp_path / "run"
    ).attach(trainer)
    trainer.train()
    logged = _logged(trainer)
    assert [entry["epoch"] for entry in logged] == [1.0, 2.0]
    assert callback.measurements == 2
    expected = measure_model(trainer.model, loader, classifier="classifier")
    assert logged[-1]["nc/train/penultimate/nc1"] == pytest.approx(
        expected["penultimate"].nc1, rel=1e-6
    )
    rows_written = [
        json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [row["epoch"] for row in rows_written] == [1, 2]
    assert json.loads((tmp_path / "run" / "config.json").read_text())["index"] == "epoch"


def test_every_n_steps_measures_at_those_steps_and_the_last(tmp_path):
    rows = _rows()  # 3 steps per epoch, 6 in all
    trainer = _trainer(tmp_path, rows, eval_dataset=rows, eval_strategy="epoch")
    callback = NeuralCollapseCallback(classifier="classifier", every_n_steps=4).attach(trainer)
    trainer.train()
    assert [entry["step"] for entry in _logged(trainer)] == [4, 6]
    assert callback.measurements == 2  # not at the evaluations


def test_metrics_option_chooses_what_is_logged_and_the_run_directory_keeps_all(tmp_path):
    rows = _rows()
    trainer = _trainer(tmp_path, rows, num_train_epochs=1)
    NeuralCollapseCallback(
        classifier="classifier", metrics=["NC3", "nc1"], run_dir=tmp_path / "run"
    ).attach(trainer)
    trainer.train()
    (entry,) = _logged(trainer)
    assert {key for key in entry if key.startswith("nc/")} == {
        "nc/train/penultimate/self_duality",
        "nc/train/penultimate/self_duality_uncentred",
        "nc/train/penultimate/nc1",
    }
    (row,) = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert {"etf_gap_means", "cdnv", "ncc_mismatch", "gnc2_dist_mean"} <= set(row)


def test_a_run_that_will_never_measure_warns_once(tmp_path):
    rows = _rows()
    trainer = _trainer(tmp_path, rows, eval_dataset=rows, eval_strategy="epoch", eval_delay=5)
    callback = NeuralCollapseCallback(classifier="classifier").attach(trainer)
    with pytest.warns(NoMeasurementWarning) as caught:
        trainer.train()
    messages = [str(w.message) for w in caught if issubclass(w.category, NoMeasurementWarning)]
    assert len(messages) == 1
    assert "eval_delay=5" in messages[0] and "never evaluates" in messages[0]
    assert callback.measurements == 0


def test_a_run_that_measures_does_not_warn(tmp_path):
    rows = _rows()
    trainer = _trainer(tmp_path, rows, num_train_epochs=1)
    NeuralCollapseCallback(classifier="classifier").attach(trainer)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoMeasurementWarning)
        trainer.train()
    assert len(_logged(trainer)) == 1


def test_a_callback_without_the_trainer_says_the_reporters_will_not_get_its_values(tmp_path):
    pytest.importorskip("tensorboard")
    rows = _rows()
    trainer = _trainer(tmp_path, rows, num_train_epochs=1, report_to=["tensorboard"])
    trainer.add_callback(NeuralCollapseCallback(classifier="classifier"))  # not attach()
    with pytest.warns(UserWarning, match=r"not to tensorboard: add it with .*attach\(trainer\)"):
        trainer.train()
    assert len(_logged(trainer)) == 1  # log_history still has them


class _FakeWandb:
    """What ``WandbCallback`` calls on the ``wandb`` module: ``log`` and ``run.summary``."""

    def __init__(self):
        self.logged = []
        self.run = types.SimpleNamespace(summary={})

    def log(self, values, **_):
        self.logged.append(dict(values))


def _reporter_with_fake_wandb():
    """transformers' real ``WandbCallback`` (its own ``on_log``), on a stand-in for the
    ``wandb`` module, which the tests do not install."""
    from transformers.integrations.integration_utils import WandbCallback, WandbLogModel

    reporter = WandbCallback.__new__(WandbCallback)
    reporter._wandb = _FakeWandb()
    reporter._initialized = True
    reporter._log_model = WandbLogModel("false")
    return reporter


def test_wandb_gets_our_names_and_the_trainers_own_logs_stay_renamed(tmp_path):
    """Through W&B's own on_log: nc/<split>/<layer>/<metric> as TensorBoard gets them (no
    train/ prefix), while the Trainer's own loss is still train/loss (the renaming is
    switched off for our values only)."""
    from transformers.integrations import integration_utils

    rewrite = integration_utils.rewrite_logs
    rows = _rows()
    trainer = _trainer(
        tmp_path, rows, num_train_epochs=1, logging_strategy="steps", logging_steps=1
    )
    reporter = _reporter_with_fake_wandb()
    trainer.add_callback(reporter)
    NeuralCollapseCallback(classifier="classifier").attach(trainer)
    trainer.train()
    logged = reporter._wandb.logged
    ours = [entry for entry in logged if "nc/train/penultimate/nc1" in entry]
    assert len(ours) == 1
    assert not any(key.startswith("train/nc/") for entry in logged for key in entry)
    assert ours[0]["nc/train/penultimate/nc1"] == _logged(trainer)[0]["nc/train/penultimate/nc1"]
    assert any("train/loss" in entry for entry in logged)
    assert integration_utils.rewrite_logs is rewrite  # restored
