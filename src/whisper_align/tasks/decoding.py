"""Decoding one 30-second window: greedy, sampling or beam search over the kv-cache, with Whisper's rules.

The behaviour is openai-whisper's ``decoding.py`` (same options, same logit filters in the same order, same beam
bookkeeping and ranking), so the same weights give the same tokens. What it adds is **attention capture**: with
``DecodingOptions(capture_attention=True)`` every decoder call also returns the cross-attention scores of the
model's alignment heads, and the result carries, for the chosen sequence, one score row per token position
(initial tokens, then each sampled token) — following the chosen beam back through every reorder. Word timings
then need no second decoder pass (see :mod:`whisper_align.tasks.transcribe`).

Rows and tokens line up like this: ``attention[:, p]`` is the query row of position ``p`` of
``initial_tokens + tokens``; that row is the one that *predicted* token ``p + 1``. The last row (the last sampled
token, which predicted EOT) is present whenever the context had room for it; otherwise ``attention`` is None.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..checkpoints.tokenizers import get_tokenizer
from ..errors import DecodingError
from ..frontend.tokenizer import Tokenizer
from ..model.whisper import KVCache, Whisper
from .decoding_rules import ApplyTimestampRules, LogitFilter, SuppressBlank, SuppressTokens, suppressed_tokens

CHUNK_LENGTH = 30  # seconds the encoder sees


def compression_ratio(text: str) -> float:
    """Bytes of ``text`` over bytes of its zlib compression; repetitive (looping) text scores high."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


@dataclass(frozen=True)
class DecodingOptions:
    task: str = "transcribe"  # "transcribe" (X -> X) or "translate" (X -> English)
    language: str | None = None  # None: detected (multilingual models) or "en"
    temperature: float = 0.0  # 0: greedy / beam search; > 0: sampling
    sample_len: int | None = None  # most tokens to sample; default n_text_ctx // 2
    best_of: int | None = None  # independent samples when temperature > 0
    beam_size: int | None = None  # beams when temperature == 0
    patience: float | None = None  # beam-search patience (arXiv:2204.05424)
    length_penalty: float | None = None  # None: rank by logprob / length; else Google NMT's alpha in [0, 1]
    prompt: str | list[int] | None = None  # previous context, after <|startofprev|>
    prefix: str | list[int] | None = None  # forced start of this window's text
    suppress_tokens: str | Sequence[int] | None = "-1"  # "-1": the tokenizer's non-speech symbols
    suppress_blank: bool = True
    without_timestamps: bool = False
    max_initial_timestamp: float | None = 1.0
    fp16: bool = True  # half precision on an accelerator; ignored on the CPU
    capture_attention: bool = False  # keep the alignment heads' scores of the chosen sequence
    # greedy on the CPU: vocabulary projection in int8, every token that could win recomputed in float32, so the
    # same tokens as float32 (fast_logits.py); ignored when sampling (temperature > 0)
    checked_int8_logits: bool = False


@dataclass
class DecodingResult:
    audio_features: Tensor
    language: str
    mel: Tensor | None = None  # the window's log-mel frames (None when decoding started from audio features)
    language_probs: dict[str, float] | None = None
    tokens: list[int] = field(default_factory=list)  # sampled tokens, EOT excluded
    text: str = ""
    avg_logprob: float = float("nan")
    sum_logprob: float = float("nan")
    no_speech_prob: float = float("nan")
    temperature: float = float("nan")
    compression_ratio: float = float("nan")
    initial_tokens: tuple[int, ...] = ()
    # per sampled token: its probability among text tokens (softmax over ids < EOT of the raw logits); nan for
    # timestamps. The same quantity openai-whisper's word probabilities use.
    text_token_probs: list[float] = field(default_factory=list)
    attention: Tensor | None = None  # (alignment heads, len(initial_tokens) + len(tokens), n_audio_ctx)


# ---- language detection -----------------------------------------------------------------------------------------


@torch.no_grad()
def detect_language(model: Whisper, mel: Tensor, tokenizer: Tokenizer | None = None) -> tuple[Tensor, Any]:
    """Most likely language token and ``{code: probability}`` for a mel window (n_mels, 3000) or a batch of them
    (or already-encoded audio features). Uses the logits after ``<|startoftranscript|>``, language tokens only."""
    if not model.is_multilingual:
        raise DecodingError(
            "this model is English-only and has no language tokens; language detection needs a "
            "multilingual model (e.g. 'base', not 'base.en')"
        )
    tokenizer = tokenizer or get_tokenizer(model)
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    features = mel if mel.shape[-2:] == (model.dims.n_audio_ctx, model.dims.n_audio_state) else model.embed_audio(mel)
    sot = torch.full((features.shape[0], 1), tokenizer.sot, device=features.device)
    logits = model.logits(sot, features)[:, 0]
    language_ids = list(tokenizer.all_language_tokens)
    mask = torch.ones(logits.shape[-1], dtype=torch.bool, device=logits.device)
    mask[language_ids] = False
    logits[:, mask] = -np.inf
    best = logits.argmax(dim=-1)
    probs = logits.softmax(dim=-1).cpu()
    by_code = [
        {code: float(probs[i, t]) for t, code in zip(language_ids, tokenizer.all_language_codes)}
        for i in range(features.shape[0])
    ]
    return (best[0], by_code[0]) if single else (best, by_code)


# ---- beam search ------------------------------------------------------------------------------------------------


class BeamSearch:
    """openai-whisper's beam search: each beam proposes its ``beam_size + 1`` best continuations, the best
    ``beam_size`` unfinished sequences per audio survive, and finished ones are kept until ``beam_size * patience``
    candidates exist. Candidates remember ``(step, row)`` so their attention can be traced back."""

    def __init__(self, beam_size: int, eot: int, patience: float | None):
        self.beam_size, self.eot = beam_size, eot
        self.max_candidates = round(beam_size * (patience or 1.0))
        if self.max_candidates <= 0:
            raise DecodingError(
                f"beam_size {beam_size} with patience {patience} leaves no candidates; use beam_size >= 1"
            )
        self.finished: list[dict[tuple[int, ...], tuple[float, tuple[int, int]]]] = []

    def update(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor, step: int) -> tuple[Tensor, bool, list[int]]:
        n_audio = tokens.shape[0] // self.beam_size
        if not self.finished:
            self.finished = [{} for _ in range(n_audio)]
        logprobs = F.log_softmax(logits.float(), dim=-1)
        next_tokens: list[tuple[int, ...]] = []
        sources: list[int] = []
        for i in range(n_audio):
            scores: dict[tuple[int, ...], float] = {}
            origin: dict[tuple[int, ...], int] = {}
            for j in range(self.beam_size):
                row = i * self.beam_size + j
                prefix = tokens[row].tolist()
                top_lp, top_tok = logprobs[row].topk(self.beam_size + 1)
                for lp, tok in zip(top_lp, top_tok):
                    sequence = tuple(prefix + [int(tok)])
                    scores[sequence] = float(sum_logprobs[row] + lp)  # float32 sum, as openai's
                    origin[sequence] = row
            newly: dict[tuple[int, ...], tuple[float, tuple[int, int]]] = {}
            kept = 0
            for sequence in sorted(scores, key=scores.get, reverse=True):  # type: ignore[arg-type]
                if sequence[-1] == self.eot:
                    newly[sequence] = (scores[sequence], (step, origin[sequence]))
                else:
                    sum_logprobs[len(next_tokens)] = scores[sequence]
                    next_tokens.append(sequence)
                    sources.append(origin[sequence])
                    kept += 1
                    if kept == self.beam_size:
                        break
            done = self.finished[i]
            for sequence in sorted(newly, key=lambda s: newly[s][0], reverse=True):
                if len(done) >= self.max_candidates:
                    break
                done[sequence] = newly[sequence]
        completed = all(len(done) >= self.max_candidates for done in self.finished)
        return torch.tensor(next_tokens, device=tokens.device), completed, sources

    def finalize(
        self, tokens: Tensor, sum_logprobs: Tensor, last_step: int
    ) -> list[list[tuple[list[int], float, tuple[int, int]]]]:
        """Per audio: [(sequence incl. EOT, sum_logprob, (step, row))], topping up with unfinished beams."""
        out = []
        for i, done in enumerate(self.finished or [{} for _ in range(tokens.shape[0] // self.beam_size)]):
            if len(done) < self.beam_size:
                group = sum_logprobs[i * self.beam_size : (i + 1) * self.beam_size].cpu()
                for j in list(np.argsort(group.numpy(), kind="quicksort"))[::-1]:
                    row = i * self.beam_size + int(j)
                    done[tuple(tokens[row].tolist() + [self.eot])] = (float(group[j]), (last_step, row))
                    if len(done) >= self.beam_size:
                        break
            out.append([(list(seq), score, origin) for seq, (score, origin) in done.items()])
        return out


_Candidate = tuple[list[int], float, tuple[int, int]]  # (sequence, score, (tokens sampled, batch row))


@dataclass
class _Chosen:
    """The sequence chosen for one audio: its text tokens, their summed log-probability, each token's probability
    among text tokens, the captured attention rows (or None) and the no-speech probability."""

    tokens: list[int]
    sum_logprob: float
    text_token_probs: list[float]
    attention: Tensor | None
    no_speech_prob: float


# ---- the decoding task ------------------------------------------------------------------------------------------


class DecodingTask:
    """One decoding run over a batch of mel windows with fixed options."""

    def __init__(self, model: Whisper, options: DecodingOptions, tokenizer: Tokenizer | None = None):
        _check(options)
        self.model, self.options = model, options
        self.tokenizer = tokenizer or get_tokenizer(model, language=options.language or "en", task=options.task)
        self.n_group = options.beam_size or options.best_of or 1
        self.n_ctx = model.dims.n_text_ctx
        self.sample_len = options.sample_len or self.n_ctx // 2
        tok = self.tokenizer
        sot_sequence = tok.sot_sequence_including_notimestamps if options.without_timestamps else tok.sot_sequence
        self.initial_tokens = self._initial_tokens(tuple(sot_sequence))
        self.sample_begin = len(self.initial_tokens)
        self.sot_index = self.initial_tokens.index(tok.sot)

        self.filters: list[LogitFilter] = []
        if options.suppress_blank:
            self.filters.append(SuppressBlank(tok.encode(" ") + [tok.eot], self.sample_begin))
        if options.suppress_tokens:
            always = [tok.transcribe, tok.translate, tok.sot, tok.sot_prev, tok.sot_lm, tok.no_speech]
            self.filters.append(
                SuppressTokens(suppressed_tokens(options.suppress_tokens, tok.non_speech_tokens, always))
            )
        self.fast_projection = None
        if options.checked_int8_logits and options.temperature == 0 and not model.is_quantized:
            if model.device.type != "cpu":
                raise DecodingError(f"checked_int8_logits runs on the CPU only; this model is on {model.device}")
            from ..model.int8_logits import CheckedInt8Vocabulary

            suppressed = next((f.suppress for f in self.filters if isinstance(f, SuppressTokens)), [])
            self.fast_projection = CheckedInt8Vocabulary(
                model.decoder, tok.eot, suppressed, always_exact=tok.encode(" ")
            )
        if not options.without_timestamps:
            precision = CHUNK_LENGTH / model.dims.n_audio_ctx  # 0.02 s a timestamp step
            max_initial = None
            if options.max_initial_timestamp:
                max_initial = round(options.max_initial_timestamp / precision)
            self.filters.append(
                ApplyTimestampRules(tok.timestamp_begin, tok.eot, tok.no_timestamps, self.sample_begin, max_initial)
            )

    def _initial_tokens(self, sot_sequence: tuple[int, ...]) -> tuple[int, ...]:
        tokens = list(sot_sequence)
        if prefix := self.options.prefix:
            prefix_tokens = self.tokenizer.encode(" " + prefix.strip()) if isinstance(prefix, str) else list(prefix)
            # openai-whisper's cut, kept for identical tokens: with the default sample_len this is [-0:], the whole
            # prefix
            tokens += prefix_tokens[-(self.n_ctx // 2 - self.sample_len) :]
        if prompt := self.options.prompt:
            prompt_tokens = self.tokenizer.encode(" " + prompt.strip()) if isinstance(prompt, str) else list(prompt)
            tokens = [self.tokenizer.sot_prev] + prompt_tokens[-(self.n_ctx // 2 - 1) :] + tokens
        return tuple(tokens)

    @torch.no_grad()
    def run(self, mel: Tensor) -> list[DecodingResult]:
        model, tok, opts = self.model, self.tokenizer, self.options
        dtype = torch.float16 if (opts.fp16 and model.device.type != "cpu") else torch.float32
        given_features = mel.shape[-2:] == (model.dims.n_audio_ctx, model.dims.n_audio_state)
        if given_features:
            features = mel.to(dtype)
        else:
            features = model.encoder(mel.to(model.device).to(dtype))
        n_audio = features.shape[0]
        tokens = torch.tensor([self.initial_tokens], device=features.device).repeat(n_audio, 1)

        languages = [opts.language or "en"] * n_audio
        language_probs: list[dict[str, float]] | None = None
        if opts.language is None and model.is_multilingual:
            lang_tokens, language_probs = detect_language(model, features, tok)
            languages = [max(p, key=p.get) for p in language_probs]  # type: ignore[arg-type]
            tokens[:, self.sot_index + 1] = lang_tokens

        tokens = tokens.repeat_interleave(self.n_group, dim=0)
        group_features = features.repeat_interleave(self.n_group, dim=0)
        out = self._main_loop(group_features, tokens)
        results = []
        for a in range(n_audio):
            chosen = out[a]
            text = tok.decode(chosen.tokens).strip()
            results.append(
                DecodingResult(
                    audio_features=features[a],
                    mel=None if given_features else mel[a],
                    language=languages[a],
                    language_probs=None if language_probs is None else language_probs[a],
                    tokens=chosen.tokens,
                    text=text,
                    avg_logprob=chosen.sum_logprob / (len(chosen.tokens) + 1),
                    sum_logprob=chosen.sum_logprob,
                    no_speech_prob=chosen.no_speech_prob,
                    temperature=opts.temperature,
                    compression_ratio=compression_ratio(text),
                    initial_tokens=tuple(tokens[a * self.n_group].tolist()),
                    text_token_probs=chosen.text_token_probs,
                    attention=chosen.attention,
                )
            )
        return results

    def _main_loop(self, features: Tensor, tokens: Tensor) -> list[_Chosen]:
        """Run the decoder step by step; per audio return the chosen sequence."""
        model, tok, opts = self.model, self.tokenizer, self.options
        eot, batch, device = tok.eot, tokens.shape[0], features.device
        qk_heads = model.alignment_heads_by_layer() if opts.capture_attention else None
        beam = BeamSearch(opts.beam_size, eot, opts.patience) if opts.beam_size is not None else None
        cache = KVCache()
        sum_logprobs = torch.zeros(batch, device=device)
        calls: list[Tensor] = []  # captured rows of each decoder call s: (batch, heads, n_new, S)
        parents: list[list[int] | None] = []  # after update s, row i continues row parents[s][i] (None: same row)
        token_logprobs: list[Tensor] = []  # after update s, log-prob among text tokens of row i's new token
        no_speech_probs = [float("nan")] * batch
        completed = False

        def call(
            new_tokens: Tensor, positions: list[int] | None = None, logits: bool = True, projection: Any = None
        ) -> Tensor | None:
            out, scores = model.decoder(
                new_tokens,
                features,
                cache=cache,
                qk_heads=qk_heads,
                logits=logits,
                logit_positions=positions,
                projection=projection,
            )
            if qk_heads:
                calls.append(torch.cat([scores[layer] for layer in sorted(scores)], dim=1))
            return out

        for i in range(self.sample_len):
            if i == 0:  # the whole prompt; logits only where they are read: <|startoftranscript|> and the last
                logits = call(tokens, positions=[self.sot_index, tokens.shape[-1] - 1])
                assert logits is not None  # asked for
                if tok.no_speech is not None:
                    no_speech_probs = logits[:, 0].float().softmax(-1)[:, tok.no_speech].tolist()
            else:  # (the first call stays float32: it also gives the no-speech probability)
                logits = call(tokens[:, -1:], projection=self.fast_projection)
            assert logits is not None  # asked for
            logits = logits[:, -1]
            raw_text = F.log_softmax(logits[:, :eot].float(), dim=-1)
            for rule in self.filters:
                rule.apply(logits, tokens)
            src: list[int] | None = None
            if beam is not None:
                tokens, completed, src = beam.update(tokens, logits, sum_logprobs, i)
                cache.reorder(torch.tensor(src, device=device))
            else:
                tokens, completed = self._sample(tokens, logits, sum_logprobs)
            rows = torch.arange(batch, device=device) if src is None else torch.tensor(src, device=device)
            chosen = tokens[:, -1]
            token_logprobs.append(raw_text[rows, chosen.clamp(max=eot - 1)].masked_fill(chosen >= eot, float("nan")))
            parents.append(src)
            if completed or tokens.shape[-1] > self.n_ctx:
                break

        n_steps = len(parents)
        if qk_heads and not completed and tokens.shape[-1] <= self.n_ctx:
            call(tokens[:, -1:], logits=False)  # the row of the last sampled token, which no loop call computed

        if beam is not None:
            candidates = beam.finalize(tokens, sum_logprobs, n_steps)
        else:
            candidates = self._sampled_candidates(tokens, sum_logprobs)

        outputs = []
        for a, group in enumerate(candidates):
            seqs = [seq[self.sample_begin : seq.index(eot, self.sample_begin)] for seq, _, _ in group]
            best = self._rank(seqs, [score for _, score, _ in group])
            seq, score, (step, row) = seqs[best], group[best][1], group[best][2]
            chain = _row_chain(step, row, parents)  # chain[s]: the batch row of this candidate at call s
            probs = [math.exp(float(token_logprobs[s][chain[s + 1]])) for s in range(len(seq))]
            attention = None
            if qk_heads and step < len(calls):
                attention = torch.cat([calls[s][chain[s]] for s in range(step + 1)], dim=1).cpu()
            outputs.append(_Chosen(seq, score, probs, attention, no_speech_probs[a * self.n_group]))
        return outputs

    def _sampled_candidates(
        self, tokens: Tensor, sum_logprobs: Tensor
    ) -> list[list[tuple[list[int], float, tuple[int, int]]]]:
        """Greedy or sampled rows as candidates (sequence, score, (tokens sampled, row)), grouped per audio."""
        eot = self.tokenizer.eot
        padded = torch.cat([tokens, torch.full((tokens.shape[0], 1), eot, device=tokens.device)], dim=1).tolist()
        candidates = []
        for a in range(tokens.shape[0] // self.n_group):
            group = []
            for r in range(a * self.n_group, (a + 1) * self.n_group):
                n_sampled = padded[r].index(eot, self.sample_begin) - self.sample_begin
                group.append((padded[r], float(sum_logprobs[r]), (n_sampled, r)))
            candidates.append(group)
        return candidates

    def _sample(self, tokens: Tensor, logits: Tensor, sum_logprobs: Tensor) -> tuple[Tensor, bool]:
        eot, t = self.tokenizer.eot, self.options.temperature
        if t == 0:
            next_tokens = logits.argmax(dim=-1)
        else:
            next_tokens = torch.distributions.Categorical(logits=logits / t).sample()
        logprobs = F.log_softmax(logits.float(), dim=-1)
        current = logprobs[torch.arange(logprobs.shape[0]), next_tokens]
        sum_logprobs += current * (tokens[:, -1] != eot)
        next_tokens[tokens[:, -1] == eot] = eot
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=-1)
        return tokens, bool((tokens[:, -1] == eot).all())

    def _rank(self, seqs: list[list[int]], scores: list[float]) -> int:
        alpha = self.options.length_penalty
        ranked = [s / (len(q) if alpha is None else ((5 + len(q)) / 6) ** alpha) for q, s in zip(seqs, scores)]
        return int(np.argmax(ranked))


def _row_chain(step: int, row: int, parents: list[list[int] | None]) -> list[int]:
    """Follow a candidate back from ``row`` at decoder call ``step`` through every beam reorder: the returned
    list holds its batch row at calls 0..step."""
    chain = [row]
    for s in range(step - 1, -1, -1):
        src = parents[s]
        row = row if src is None else src[row]
        chain.append(row)
    return chain[::-1]


def _check(options: DecodingOptions) -> None:
    if options.task not in ("transcribe", "translate"):
        raise DecodingError(f"task {options.task!r} is unknown; use 'transcribe' or 'translate'")
    if options.beam_size is not None and options.best_of is not None:
        raise DecodingError(
            "beam_size and best_of cannot be given together: beam search is for temperature 0, best_of for sampling"
        )
    if options.temperature == 0 and options.best_of is not None:
        raise DecodingError("best_of needs sampling (temperature > 0); use beam_size for temperature 0")
    if options.patience is not None and options.beam_size is None:
        raise DecodingError("patience only applies to beam search; give beam_size too")
    if options.checked_int8_logits and options.beam_size is not None:
        raise DecodingError(
            "checked_int8_logits applies to greedy decoding only (it keeps the argmax exact, not "
            "a beam's top candidates); drop beam_size or checked_int8_logits"
        )
    if options.length_penalty is not None and not 0 <= options.length_penalty <= 1:
        raise DecodingError(f"length_penalty {options.length_penalty} must be between 0 and 1 (or None)")
    for name in ("beam_size", "best_of", "sample_len"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise DecodingError(f"{name} must be at least 1, got {value}")


@torch.no_grad()
def decode(
    model: Whisper,
    mel: Tensor,
    options: DecodingOptions = DecodingOptions(),
    *,
    tokenizer: Tokenizer | None = None,
    **kwargs: Any,
) -> DecodingResult | list[DecodingResult]:
    """Decode one mel window (n_mels, 3000) — or a batch (n, n_mels, 3000) — into a :class:`DecodingResult`
    (a list for a batch). ``kwargs`` override fields of ``options``."""
    single = mel.ndim == 2
    if single:
        mel = mel.unsqueeze(0)
    if kwargs:
        options = replace(options, **kwargs)
    results = DecodingTask(model, options, tokenizer).run(mel)
    return results[0] if single else results
