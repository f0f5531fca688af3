"""Defensive distillation: the deployed (T = 1) student's input gradients vanish where a standard model's do not,
which stops cross-entropy PGD but not the margin loss; the soft-label loss and the CLI's two phases."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advx import evaluate
from advx.attacks import PGD
from advx.cli import main
from advx.data import load
from advx.defenses.distillation import DistillationTraining, TemperatureTraining
from advx.defenses.loop import TrainConfig, accuracy, train
from advx.model import input_gradient
from advx.threat import Linf
from advx.zoo import load_model


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))


@pytest.fixture(scope="module")
def models():
    data, test = load("mnist", "train", n=1000, seed=0), load("mnist", "test", n=300, seed=1)
    standard = mlp()
    train(standard, data, TrainConfig(epochs=5, batch_size=50, lr=2e-3))
    teacher = mlp()
    config = TrainConfig(epochs=5, batch_size=50, lr=1e-2, defense="temperature", defense_options={"temperature": 100})
    train(teacher, data, config)
    student = mlp()
    train(student, data, TrainConfig(epochs=5, batch_size=50, lr=1e-2, defense="distill",
                                     defense_options={"teacher": teacher, "temperature": 100}))
    return standard, teacher, student, test


def gradient_norms(model, test):
    _, grad, logits = input_gradient(model, test.x, lambda z: F.cross_entropy(z, test.y, reduction="none"))
    correct = logits.argmax(1) == test.y
    return grad.flatten(1).norm(dim=1)[correct]


def test_distilled_gradients_at_t1_are_much_smaller_than_a_standard_models(models):
    standard, _, student, test = models
    assert accuracy(student, test.x, test.y) > 0.6  # a working classifier
    g_standard, g_student = gradient_norms(standard, test), gradient_norms(student, test)
    assert g_student.median() < 1e-2 * g_standard.median()
    assert (g_student == 0).float().mean() > 0.3 and (g_standard == 0).float().mean() == 0  # exact underflow


def test_distilled_gradients_at_t1_are_much_smaller_than_the_teachers_at_its_temperature(models):
    _, teacher, student, test = models

    class AtTemperature(nn.Module):  # the teacher as it was trained: softmax(z / T)
        def forward(self, x):
            return teacher(x) / 100

    g_teacher, g_student = gradient_norms(AtTemperature().eval(), test), gradient_norms(student, test)
    assert g_student.median() < 1e-2 * g_teacher.median()
    assert (g_teacher == 0).float().mean() == 0


def test_the_masking_stops_cross_entropy_pgd_but_not_the_margin_loss(models):
    _, _, student, test = models
    ce = PGD(Linf(0.1), steps=20, loss="ce")(student, test.x, test.y).robust_accuracy()
    margin = PGD(Linf(0.1), steps=20, loss="margin")(student, test.x, test.y).robust_accuracy()
    assert margin < ce - 0.1


def test_the_evaluator_flags_the_distilled_model_and_not_the_standard_one(models):
    standard, _, student, test = models
    x, y = test.x[:64], test.y[:64]
    checks = {}
    for name, model in (("standard", standard), ("student", student)):
        report = evaluate(model, (x, y), "linf:0.1", attacks="apgd-ce:5", checks=["gradients"], progress=False)
        checks[name] = report.check("gradients")
    assert not checks["standard"].fired
    assert checks["student"].fired and "cross-entropy" in checks["student"].message
    assert checks["student"].evidence["ce_zero"] > 0.1 * checks["student"].evidence["points"]


def test_soft_label_loss_is_the_cross_entropy_against_the_teachers_softmax_at_t():
    torch.manual_seed(1)
    teacher, student = nn.Linear(5, 3), nn.Linear(5, 3)
    x = torch.randn(8, 5)
    loss, logits = DistillationTraining(teacher, temperature=4.0)(student, x, torch.zeros(8, dtype=torch.long), None)
    soft = F.softmax(teacher(x) / 4, dim=1)
    assert torch.allclose(loss, F.cross_entropy(student(x) / 4, soft))  # soft-target cross-entropy
    assert torch.equal(logits, student(x))  # deployed at T = 1
    t_loss, _ = TemperatureTraining(4.0)(student, x, torch.ones(8, dtype=torch.long), None)
    assert torch.allclose(t_loss, F.cross_entropy(student(x) / 4, torch.ones(8, dtype=torch.long)))
    with pytest.raises(ValueError, match="temperature"):
        TemperatureTraining(0)


def test_cli_distill_trains_and_saves_teacher_then_student(tmp_path, monkeypatch):
    monkeypatch.setenv("ADVX_OFFLINE", "1")
    out = tmp_path / "d.safetensors"
    args = ["train", "--arch", "lenet", "--data", "mnist", "--epochs", "1", "--n-train", "128", "--eval-n", "0",
            "--batch-size", "64", "--lr", "0.01", "--no-progress", "--defense", "distill", "--temperature", "50",
            "--out", str(out)]
    assert main(args) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    teacher_path = tmp_path / "d-teacher.safetensors"
    assert meta["defense_options"] == {"temperature": 50.0, "teacher": str(teacher_path)}
    assert "--defense distill --temperature 50" in meta["command"]
    teacher, student = load_model(teacher_path), load_model(out)
    assert not torch.equal(teacher.classifier[-1].weight, student.classifier[-1].weight)
    first = student.state_dict()
    assert main(args + ["--resume"]) == 0  # both phases' checkpoints are complete: nothing retrained
    assert all(torch.equal(first[k], v) for k, v in load_model(out).state_dict().items())
