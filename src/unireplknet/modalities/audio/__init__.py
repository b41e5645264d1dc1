"""Audio as an image: waveform -> normalised log-mel filterbank ``1 x T x F`` for UniRepLKNet (``in_chans=1``).

Recipe (the paper's audio setting): decode with soundfile, mix down to mono, resample to 16 kHz
(librosa/soxr); crop or zero-pad the waveform so that a 25 ms Hann window with a 10 ms hop gives
exactly ``frames`` frames; 128-bin mel filterbank (librosa); natural log; normalise with one mean/std
computed over the training set and stored with the run. Training adds background noise (Speech
Commands), random crops, SpecAugment time/frequency masks and mixup (the task's batch transform).

* :mod:`.io`: decoding files to waveforms;
* :mod:`.transforms`: :class:`LogMelFrontend`, :func:`spec_augment`, :func:`add_background_noise`;
* :mod:`.cache`: :class:`LogMelCache`, decoded clips' log-mel maps kept on disk;
* :mod:`.datasets`: :class:`AudioClipDataset`, the Speech Commands V2 and "one folder per class" layouts,
  splits by group;
* :mod:`.demo`: the bundled sound-type demo built from Debian's ``sonic-pi-samples`` and ``hydrogen-data``
  recordings (:func:`sound_type_items`; where they are: :mod:`unireplknet.data.sources`);
* :mod:`.spoken_language`: the bundled spoken-language demo, Tux Paint's spoken stamp descriptions from
  Debian's ``tuxpaint-stamps-default`` (:func:`spoken_language_items`).
"""

from __future__ import annotations

from ...data.sources import SOUND_TYPE_ROOTS
from .cache import LogMelCache
from .datasets import (
    AudioClipDataset,
    Item,
    audio_files,
    folder_items,
    speech_commands_items,
    split_by_group,
    split_by_shared_group,
)
from .demo import SONIC_PI_FAMILIES, SOUND_TYPE_RULES, sound_type_items, sound_type_label
from .io import AUDIO_EXTENSIONS, load_audio
from .spoken_language import DESCRIPTION_NAME, description_language, spoken_language_items
from .transforms import LogMelFrontend, add_background_noise, spec_augment

__all__ = [  # what the parts export, alphabetically
    "add_background_noise",
    "AUDIO_EXTENSIONS",
    "audio_files",
    "AudioClipDataset",
    "DESCRIPTION_NAME",
    "description_language",
    "folder_items",
    "Item",
    "load_audio",
    "LogMelCache",
    "LogMelFrontend",
    "SONIC_PI_FAMILIES",
    "sound_type_items",
    "sound_type_label",
    "SOUND_TYPE_ROOTS",
    "SOUND_TYPE_RULES",
    "spec_augment",
    "speech_commands_items",
    "split_by_group",
    "split_by_shared_group",
    "spoken_language_items",
]
