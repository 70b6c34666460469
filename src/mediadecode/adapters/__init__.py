"""Adapters that make other libraries read media through mediadecode.

Each submodule imports its framework lazily, only when it is imported itself; importing
``mediadecode.adapters`` imports none of them and changes nothing in any other library.

- :mod:`mediadecode.adapters.torchaudio`: torchaudio 2.1-2.8's ``load``/``info`` contract and
  :func:`~mediadecode.adapters.torchaudio.use_for_datasets` for torchaudio's datasets.
- :mod:`mediadecode.adapters.torchvision`: torchvision 0.19-0.21's ``read_video``,
  ``read_video_timestamps`` and ``VideoReader``, and
  :func:`~mediadecode.adapters.torchvision.use_for_datasets` for torchvision 0.29's video datasets.
- :mod:`mediadecode.adapters.hf_datasets`: Hugging Face ``datasets`` ``Video``/``Audio`` features
  whose values decode to :class:`mediadecode.VideoDecoder`/:class:`mediadecode.AudioDecoder`.
- :mod:`mediadecode.adapters.patching`: the reversible patch their ``use_for_datasets`` return.
"""
