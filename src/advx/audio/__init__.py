"""Speech: a decibel threat, WAV I/O, a log-mel front end, spoken-digit data
(synthetic espeak-ng speech, or the Free Spoken Digit recordings), a
keyword-spotting CNN on raw waveforms, and audio attacks (C&W minimum-dB,
EOT over playback, the genetic black-box attack), and a black-box attack on a
real recogniser (CMU PocketSphinx, optional ``pocketsphinx``). PGD/APGD from
:mod:`advx.attacks` run on waveforms unchanged with a ``Decibels`` threat.
"""

from advx.audio.asr import SphinxASR, SphinxClip, sphinx_clips, wer
from advx.audio.asr_attack import TranscriptionAttack, TranscriptionResult
from advx.audio.cw import CarliniWagnerDB
from advx.audio.data import SpokenDigits, load_digits
from advx.audio.eot import EOT, success_under
from advx.audio.frontend import LogMel, mel_filterbank
from advx.audio.genetic import GeneticAttack
from advx.audio.models import KeywordSpotter, load_model, model_info
from advx.audio.resample import resample
from advx.audio.transforms import AddNoise, Compose, RandomGain, RandomShift, RoomResponse, playback
from advx.audio.wav import read_wav, write_wav
from advx.threat import Decibels, db_x, snr_db

__all__ = [
    "Decibels", "db_x", "snr_db", "LogMel", "mel_filterbank", "KeywordSpotter", "load_model", "model_info",
    "load_digits", "SpokenDigits", "read_wav", "write_wav", "resample", "EOT", "success_under", "playback",
    "RandomGain", "RandomShift", "AddNoise", "RoomResponse", "Compose", "CarliniWagnerDB", "GeneticAttack",
    "SphinxASR", "SphinxClip", "sphinx_clips", "wer", "TranscriptionAttack", "TranscriptionResult",
]
