"""``advx audio attack`` / ``advx audio universal``: printed rates, the run folder (results.json, WAVs,
adversarial.safetensors, report.html), resume, refusals."""

from __future__ import annotations

import json

from advx.audio.wav import read_wav
from advx.cli import main


def test_audio_attack_writes_wavs_summary_and_report(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["audio", "attack", "--model", "digits-kws", "--attack", "pgd", "--threat", "db:-30", "--n", "3",
                 "--steps", "10", "--playback-draws", "2", "--examples", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "synthetic speech" in text and "untargeted: success" in text and "targeted: success" in text
    summary = json.loads((out / "results.json").read_text())
    assert summary["synthetic"] is True and summary["threat_db"] == -30
    assert summary["command"] == "audio attack" and summary["medium"] == "audio" and summary["argv"][:3] == [
        "advx", "audio", "attack"]
    modes = {r["mode"]: r for r in summary["results"]}
    assert set(modes) == {"untargeted", "targeted"}
    for row in modes.values():
        assert 0 <= row["success_rate"] <= 1 and 0 <= row["success_after_playback"] <= 1
        assert row["success_16bit_wav"] == row["success_rate"]  # at -30 dB quantisation to 16 bits changes nothing
        if row["success_rate"] > 0:
            assert row["mean_db_x"] <= -30 + 1e-6 and row["mean_snr_db"] > 0
    wavs = sorted((out / "wav").glob("*.wav"))
    assert len(wavs) == 9  # clean + untargeted + targeted for 3 clips
    clean = [w for w in wavs if "_clean_" in w.name][0]
    adv = [w for w in wavs if w.name.startswith(clean.name[:3]) and "_targeted_" in w.name][0]
    (a, rate), (b, _) = read_wav(clean), read_wav(adv)
    assert rate == 16000 and a.shape == (16000,)
    peak = float(a.abs().max())  # the 16-bit file keeps the perturbation inside the bound (+ quantisation)
    assert float((b - a).abs().max()) <= peak * 10 ** (-30 / 20) + 2 / 32768
    html = (out / "report.html").read_text()
    assert html.count("<audio") == 6 and "data:audio/wav;base64," in html and "data:image/png;base64," in html
    assert "SYNTHETIC SPEECH" in html


def test_audio_attack_cw_and_bad_threat(tmp_path, capsys):
    code = main(["audio", "attack", "--attack", "cw", "--threat", "db:-20", "--n", "2", "--steps", "5", "--mode",
                 "targeted", "--playback-draws", "0", "--examples", "0", "--out", str(tmp_path / "cw")])
    assert code == 0
    summary = json.loads((tmp_path / "cw" / "results.json").read_text())
    assert [r["mode"] for r in summary["results"]] == ["targeted"] and "CarliniWagnerDB" in summary["attack"]
    capsys.readouterr()
    assert main(["audio", "attack", "--threat", "linf:0.1", "--n", "1", "--out", str(tmp_path / "x")]) == 2
    assert "db:-30" in capsys.readouterr().err


def test_audio_attack_resume_reuses_the_run_and_refuses_another(tmp_path, capsys):
    out = tmp_path / "r"
    args = ["audio", "attack", "--threat", "db:-30", "-n", "2", "--steps", "5", "--mode", "untargeted",
            "--playback-draws", "0", "--examples", "0", "--out", str(out)]
    assert main(args) == 0
    first = json.loads((out / "results.json").read_text())["results"]
    assert main(args) == 2  # a non-empty run folder needs --resume or --overwrite
    assert main([*args, "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["results"] == first
    assert main([*args[:-4], "--threat", "db:-40", "--examples", "0", "--out", str(out), "--resume"]) == 2
    capsys.readouterr()


def test_sphinx_refuses_a_target_text(tmp_path, capsys):
    assert main(["audio", "attack", "--model", "sphinx", "--target-text", "open the door", "-n", "1",
                 "--out", str(tmp_path / "s")]) == 2
    assert "untargeted" in capsys.readouterr().err


def test_universal_keyword_spotter_writes_a_run(tmp_path, capsys):
    out = tmp_path / "u"
    code = main(["audio", "universal", "--model", "digits-kws", "--target", "seven", "--threat", "db:-20",
                 "--train-n", "20", "-n", "10", "--steps", "5", "--examples", "1", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    res = json.loads((out / "results.json").read_text())
    row = res["results"][0]
    assert res["command"] == "audio universal" and row["mode"] == "targeted" and res["target"] == "seven"
    assert row["delta_dbfs"] <= -20 + 1e-6 and 0 <= row["success_rate"] <= 1
    assert (out / "report.html").is_file() and (out / "adversarial.safetensors").is_file()


def test_ctc_recogniser_targeted_attack_run(tmp_path, capsys):
    out = tmp_path / "ctc"
    code = main(["audio", "attack", "--model", "phrases-ctc", "--attack", "cw", "--target-text", "open the door",
                 "-n", "1", "--steps", "3", "--psycho-steps", "2", "--playback-draws", "0", "--examples", "1",
                 "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    res = json.loads((out / "results.json").read_text())
    assert res["target_text"] == "open the door" and res["synthetic"] is True
    assert [r["mode"] for r in res["results"]] == ["targeted", "targeted+psychoacoustic"]
    for r in res["results"]:
        assert 0 <= r["success_rate"] <= 1 and r["mean_gradients"] >= 3
    from safetensors.torch import load_file

    t = load_file(str(out / "adversarial.safetensors"))
    assert t["x"].shape == t["x_adv/targeted"].shape == (1, 40000)
    assert t["audible/targeted"].dim() == 3  # perturbation PSD minus masking threshold, for the shown clip
    assert float((t["x_adv/targeted"] - t["x"]).abs().max()) <= float(t["x"].abs().max()) * 10 ** (-30 / 20) + 1e-6
    assert len(list((out / "wav").glob("*.wav"))) == 3
    assert main(["audio", "attack", "--model", "phrases-ctc", "--target-text", "call 911", "-n", "1",
                 "--out", str(tmp_path / "bad")]) == 2
