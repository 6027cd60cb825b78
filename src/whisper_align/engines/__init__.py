"""Engines that spread a corpus run over several processes or machines; each is an optional extra.

:mod:`whisper_align.engines.ray_data` holds the callable classes for Ray Data's ``Dataset.map_batches``
(:class:`~whisper_align.engines.ray_data.RayAligner`, :class:`~whisper_align.engines.ray_data.RayTranscriber`);
:mod:`whisper_align.engines.ray_run` runs a manifest on a local Ray or a cluster and writes the same resumable
JSON lines as the single-process engine. Neither is imported here, so ``import whisper_align`` never needs Ray.
"""
