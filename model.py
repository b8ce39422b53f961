"""
The GPT language model, in the nanoGPT lineage, with the options that cover both GPT-2 and the
GPT-NeoX/Pythia shape the paper trains (405M and 10B): pre-norm blocks with LayerNorm or RMSNorm,
GELU or SwiGLU MLPs, learned or rotary positions (rotary on a fraction of each head), sequential or
parallel residual (attention and MLP read the same input), tied or untied embeddings.
Norms, rotary, the MLP activation and the LM head + loss go through kernels.py: Triton on CUDA, torch twins elsewhere.
"""
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.distributed as dist
import torch.utils.checkpoint
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.nn.parallel import DistributedDataParallel as DDP

import kernels
import runtime


# the layers that have a Triton kernel in kernels.py, beside its torch twin: what use_kernels names
KERNELS = ('norm', 'rotary', 'mlp', 'lm_head')
# the kernels on by default on CUDA: those bench/gpu_check.sh has measured at least as fast as their compiled torch
# twin on a GPU, in a real training step. None yet: no kernel of this project has run on a GPU (docs/kernels.md).
CUDA_DEFAULT_KERNELS = ()


def _kernel_names(use_kernels):
    """The kernels a use_kernels string names ('lm_head, norm' -> {'lm_head', 'norm'}); none for True/False."""
    return {k.strip() for k in use_kernels.split(',') if k.strip()} if isinstance(use_kernels, str) else set()


def default_kernels(device):
    """use_kernels when a run does not say: the measured CUDA_DEFAULT_KERNELS on CUDA, the twins elsewhere."""
    return ','.join(CUDA_DEFAULT_KERNELS) if str(device).startswith('cuda') else False


@dataclass
class GPTConfig:
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    vocab_size: int = 50257          # the tokenizer's; the embedding is padded up to a multiple of 64
    norm: str = 'layernorm'          # 'layernorm' | 'rmsnorm'
    norm_eps: float = 1e-5
    mlp: str = 'gelu'                # 'gelu' | 'swiglu'
    gelu_approximate: str = 'tanh'   # GPT-2 uses the tanh GELU, GPT-NeoX the exact one ('none')
    n_hidden: int = 0                # MLP width; 0 = 4*n_embd for gelu, 8/3*n_embd (rounded up to 64) for swiglu
    position: str = 'learned'        # 'learned' | 'rotary'
    rotary_pct: float = 1.0          # fraction of each head's dims that rotate (Pythia: 0.25)
    rotary_base: float = 10000.0
    parallel_residual: bool = False  # x + attn(ln1(x)) + mlp(ln2(x)) as in GPT-NeoX, instead of one after the other
    tie_embeddings: bool = True
    bias: bool = True
    dropout: float = 0.0
    init: str = 'gpt2'               # 'gpt2' | 'neox' (the authors' GPT-NeoX configs), see GPT.init_weights
    use_kernels: bool = False        # Triton kernels: True (all), False, or some of KERNELS ('lm_head,norm')

    def uses(self, kernel):
        """Whether the layer `kernel` (one of KERNELS) runs its Triton kernel (CUDA, or TRITON_INTERPRET=1 in
        tests) rather than its torch twin."""
        return self.use_kernels is True or kernel in _kernel_names(self.use_kernels)

    def __post_init__(self):
        choices = dict(norm=('layernorm', 'rmsnorm'), mlp=('gelu', 'swiglu'), position=('learned', 'rotary'),
                       gelu_approximate=('tanh', 'none'), init=('gpt2', 'neox'))
        for k, valid in choices.items():
            if getattr(self, k) not in valid:
                raise ValueError(f"model option {k}={getattr(self, k)!r} is not one of {valid}")
        for k in ('n_layer', 'n_head', 'n_embd', 'block_size'):
            if not getattr(self, k) >= 1:
                raise ValueError(f"model option {k}={getattr(self, k)!r} must be at least 1")
        if self.n_hidden < 0 or self.vocab_size < 0:
            raise ValueError(f"model options n_hidden={self.n_hidden} and vocab_size={self.vocab_size} must not be "
                             f"negative (0 = the default)")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout={self.dropout} must be in [0, 1)")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        unknown = _kernel_names(self.use_kernels) - set(KERNELS)
        if unknown:
            raise ValueError(f"use_kernels={self.use_kernels!r}: unknown kernel(s) {sorted(unknown)}; name some of "
                             f"{','.join(KERNELS)}, or True (all) or False (none)")
        if not 0.0 < self.rotary_pct <= 1.0:
            raise ValueError(f"rotary_pct={self.rotary_pct} must be in (0, 1]")

    @property
    def padded_vocab(self):
        # a multiple of 64 makes the LM head matmul much faster; the extra logits are masked out of loss and sampling
        return (self.vocab_size + 63) // 64 * 64

    @property
    def hidden(self):
        if self.n_hidden:
            return self.n_hidden
        return 4 * self.n_embd if self.mlp == 'gelu' else (8 * self.n_embd // 3 + 63) // 64 * 64

    @property
    def rot_dim(self):
        # even number of rotating dims per head (NeoX rotates the first rot_dim dims as two halves)
        return int(self.n_embd // self.n_head * self.rotary_pct) // 2 * 2


# Named shapes, usable from a config: `preset = 'pythia-410m'`. vocab_size 50277 is the GPT-NeoX-20B tokenizer's;
# a run sets vocab_size from its bins' meta.json anyway.
_NEOX = dict(norm='layernorm', mlp='gelu', gelu_approximate='none', position='rotary', rotary_pct=0.25,
             parallel_residual=True, tie_embeddings=False, bias=True, dropout=0.0, block_size=2048, vocab_size=50277,
             init='neox')
PRESETS = {
    'gpt2': dict(n_layer=12, n_head=12, n_embd=768, block_size=1024, vocab_size=50257, norm='layernorm', mlp='gelu',
                 gelu_approximate='tanh', position='learned', parallel_residual=False, tie_embeddings=True, bias=True),
    'pythia-410m': dict(_NEOX, n_layer=24, n_head=16, n_embd=1024),   # the paper's 405M
    'neox-10b': dict(_NEOX, n_layer=36, n_head=36, n_embd=4608),      # the paper's 10B
}
MODEL_KEYS = tuple(f.name for f in fields(GPTConfig))


def config_from(preset='', **overrides):
    """GPTConfig from a preset name ('' = GPTConfig's defaults) and explicit overrides of any field."""
    if preset and preset not in PRESETS:
        raise ValueError(f"unknown model preset {preset!r}; valid presets: {sorted(PRESETS)} (or '' for none)")
    unknown = set(overrides) - set(MODEL_KEYS)
    if unknown:
        raise ValueError(f"unknown model option(s) {sorted(unknown)}; valid: {list(MODEL_KEYS)}")
    return GPTConfig(**{**PRESETS.get(preset, {}), **overrides})


def config_args(preset, cfg, given):
    """GPTConfig's fields for a run from scratch (train.py): the preset's shape with the keys a config file
    or the command line set (`given`) over it, or, with no preset, cfg's value of every field (train.py's
    defaults are GPTConfig's). vocab_size is cfg's whatever the preset says: 0 lets the bins' tokenizer
    decide."""
    shape = {k: cfg[k] for k in MODEL_KEYS if k in given or not preset}
    return {**asdict(config_from(preset, **shape)), 'vocab_size': cfg['vocab_size']}


def print_cost(model_args, tokens_per_step, steps):
    """A run's size and cost, from a model built on the meta device (no memory): parameters, FLOPs, GPU-hours."""
    with torch.device('meta'):
        model = GPT(GPTConfig(**model_args))
    n, fpt, total = model.num_params(), model.flops_per_token(), tokens_per_step * steps
    print(f"model: {n / 1e6:.1f}M parameters ({n:,}), {model.config.n_layer} layers, n_embd {model.config.n_embd}, "
          f"vocab {model.config.vocab_size}; {fpt / 1e9:.2f} GFLOPs per token")
    print(f"run: {steps:,} steps x {tokens_per_step:,} tokens = {total / 1e9:.2f}B tokens, {fpt * total:.3g} FLOPs")
    for mfu in (0.4, 0.5):
        print(f"cost at {mfu:.0%} MFU on H100 (989 TFLOP/s bf16): {fpt * total / (mfu * 989e12) / 3600:,.0f} GPU-hours")


class Norm(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.kind, self.eps, self.triton = config.norm, config.norm_eps, config.uses('norm')
        self.weight = nn.Parameter(torch.ones(config.n_embd))
        has_bias = config.bias and config.norm == 'layernorm'
        self.bias = nn.Parameter(torch.zeros(config.n_embd)) if has_bias else None

    def forward(self, x):
        if self.kind == 'rmsnorm':
            return kernels.rms_norm(x, self.weight, self.eps, triton=self.triton)
        return kernels.layer_norm(x, self.weight, self.bias, self.eps, triton=self.triton)


class Linear(nn.Linear):
    """nn.Linear whose matmul goes through kernels.linear (oneDNN for fp32 on CPU); same parameters and names."""

    def forward(self, x):
        return kernels.linear(x, self.weight, self.bias)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.c_attn = Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.residual = True  # scaled init, see GPT.init_weights
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope):
        B, T, C = x.shape
        nh = self.config.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hd)
        if rope is not None:
            cos, sin = rope
            q, k = kernels.rotary(q, k, cos, sin, triton=self.config.uses('rotary'))  # both in one launch
        dropout = self.config.dropout if self.training else 0.0
        y = kernels.causal_attention(q, k, v, dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))

    def forward_cached(self, x, rope, kv, start, mask):
        """Generation (eval mode): x (B, T, C) holds the tokens after the first `start` of the sequence, whose keys
        and values are in kv = [k, v], buffers of (B, nh, size, hd); this writes x's after them. mask (B, 1, T,
        start + T) bool: the keys each query reads."""
        B, T, C = x.shape
        nh = self.config.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, nh, C // nh).transpose(1, 2) for t in (q, k, v))
        if rope is not None:  # per-row positions (B, 1, T, rot/2): the torch twin broadcasts them, the kernel does not
            q, k = kernels.rotary_torch(q, *rope), kernels.rotary_torch(k, *rope)
        kv[0][:, :, start:start + T], kv[1][:, :, start:start + T] = k, v
        y = F.scaled_dot_product_attention(q, kv[0][:, :, :start + T], kv[1][:, :, :start + T], attn_mask=mask)
        return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        n_out = 2 * config.hidden if config.mlp == 'swiglu' else config.hidden  # swiglu: gate and up in one matmul
        self.c_fc = Linear(config.n_embd, n_out, bias=config.bias)
        self.c_proj = Linear(config.hidden, config.n_embd, bias=config.bias)
        self.c_proj.residual = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        h = self.c_fc(x)
        if self.config.mlp == 'swiglu':
            gate, up = h.chunk(2, dim=-1)
            h = kernels.swiglu(gate, up, triton=self.config.uses('mlp'))
        else:
            h = kernels.gelu(h, self.config.gelu_approximate, triton=self.config.uses('mlp'))
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.parallel = config.parallel_residual
        self.ln_1, self.attn = Norm(config), CausalSelfAttention(config)
        self.ln_2, self.mlp = Norm(config), MLP(config)

    def forward(self, x, rope):
        if self.parallel:
            return x + self.attn(self.ln_1(x), rope) + self.mlp(self.ln_2(x))
        x = x + self.attn(self.ln_1(x), rope)
        return x + self.mlp(self.ln_2(x))

    def forward_cached(self, x, rope, kv, start, mask):
        a = self.attn.forward_cached(self.ln_1(x), rope, kv, start, mask)
        if self.parallel:
            return x + a + self.mlp(self.ln_2(x))
        x = x + a
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.padded_vocab, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=Norm(config),
        ))
        if config.position == 'learned':
            self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab, bias=False)
        self.activation_checkpointing = False  # train.py's switch: recompute block activations in backward
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight
        self.init_weights()

    def init_weights(self):
        """Normal init, zero biases, unit norms; the residual projections (attention and MLP outputs) smaller, so the
        residual stream's variance does not grow with depth:
          'gpt2': std 0.02, residual projections 0.02 / sqrt(2 L) (GPT-2, nanoGPT);
          'neox': the paper's own GPT-NeoX configs: `small_init` std sqrt(2 / (5 d)) (Nguyen & Salazar 2019) for
                  every matrix and embedding, `wang_init` std 2 / (L sqrt(d)) for the residual projections. At 405M
                  (d 1024, L 24) 0.0198 and 0.0026, near GPT-2's; at 10B (d 4608, L 36) 0.0093 and 0.00082.
        Separate from __init__ so a model built on the meta device (FSDP) can be materialised and then initialised."""
        c = self.config
        if c.init == 'neox':
            std, residual_std = math.sqrt(2 / (5 * c.n_embd)), 2 / (c.n_layer * math.sqrt(c.n_embd))
        else:
            std, residual_std = 0.02, 0.02 / math.sqrt(2 * c.n_layer)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, mean=0.0, std=residual_std if getattr(m, 'residual', False) else std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=std)
            elif isinstance(m, Norm):
                nn.init.ones_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        self.init_rope()

    def num_params(self, non_embedding=True):
        """Parameter count; by default without the position embeddings (they cost no matmul FLOPs), as nanoGPT."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding and self.config.position == 'learned':
            n -= self.transformer.wpe.weight.numel()
        return n

    def init_rope(self):
        """cos/sin tables (block_size, rot_dim/2) as buffers, not computed in forward: torch.compile would fuse
        their cos() and sin() into every rotary kernel and recompute them per element (~10% of a small model's
        step on CPU). Not in the state dict; init_weights remakes them after a meta-device (FSDP) build."""
        if self.config.position != 'rotary':
            return
        d, device = self.config.rot_dim, self.transformer.wte.weight.device
        inv_freq = 1.0 / (self.config.rotary_base ** (torch.arange(0, d, 2, device=device, dtype=torch.float32) / d))
        angles = torch.outer(torch.arange(self.config.block_size, device=device, dtype=torch.float32), inv_freq)
        self.register_buffer('rope_cos', angles.cos(), persistent=False)
        self.register_buffer('rope_sin', angles.sin(), persistent=False)

    def rope(self, T):
        return (self.rope_cos[:T], self.rope_sin[:T]) if self.config.position == 'rotary' else None

    def forward(self, idx, targets=None):
        """idx (B, T) token ids. With targets (B, T), -1 = ignore: returns (None, mean loss) and never materialises
        all the logits on the kernel path. Without: returns (logits (B, T, vocab_size), None)."""
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size={self.config.block_size}")
        x = self.transformer.wte(idx)
        if self.config.position == 'learned':
            x = x + self.transformer.wpe(torch.arange(T, device=idx.device))
        x = self.transformer.drop(x)
        rope = self.rope(T)
        for block in self.transformer.h:
            if self.activation_checkpointing and self.training:
                x = torch.utils.checkpoint.checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope)
        x = self.transformer.ln_f(x)
        if targets is None:
            return kernels.linear(x, self.lm_head.weight)[..., :self.config.vocab_size], None
        loss = kernels.linear_cross_entropy(x.view(B * T, -1), self.lm_head.weight, targets.reshape(B * T),
                                            ignore_index=-1, n_valid=self.config.vocab_size,
                                            triton=self.config.uses('lm_head'))
        return None, loss

    def configure_optimizers(self, weight_decay, learning_rate, betas, eps, device_type):
        """AdamW that decays only matrices (linear weights and embeddings), never norms or biases."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{'params': [p for p in params if p.dim() >= 2], 'weight_decay': weight_decay},
                  {'params': [p for p in params if p.dim() < 2], 'weight_decay': 0.0}]
        # fused: one kernel per parameter instead of a dozen (on CPU too: 3-5x faster than the for-loop default)
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, eps=eps, fused=device_type in ('cuda', 'cpu'))

    def flops_per_token(self, T=None):
        """Training FLOPs per token at sequence length T (default: the model's block_size): 6 per matmul
        parameter (forward + backward) plus the attention scores and their weighted sum, 12 * n_layer * n_embd * T
        (PaLM, appendix B). Used for MFU. Embedding lookups are not matmuls: an untied input embedding (and learned
        positions) cost nothing here; a tied one is the LM head."""
        c = self.config
        n = self.num_params() - (0 if c.tie_embeddings else self.transformer.wte.weight.numel())
        return 6 * n + 12 * c.n_layer * c.n_embd * (T or c.block_size)

    def forward_cached(self, idx, pos, kv, start, mask):
        """Generation's forward, with a KV cache: idx (B, T) are the tokens after the first `start` of each row, at
        positions pos (B, T); kv holds one [k, v] pair of buffers per layer (see generate), mask (B, 1, T, start + T)
        the keys each query reads. Returns the logits of the last position only (B, vocab_size)."""
        x = self.transformer.wte(idx)
        if self.config.position == 'learned':
            x = x + self.transformer.wpe(pos)
        rope = self.rope(self.config.block_size)
        if rope is not None:
            rope = tuple(t[pos][:, None] for t in rope)  # the training tables, read at each row's positions
        for block, layer_kv in zip(self.transformer.h, kv):
            x = block.forward_cached(x, rope, layer_kv, start, mask)
        return self.lm_head(self.transformer.ln_f(x[:, -1]))[..., :self.config.vocab_size]

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=1.0, eot_id=None, left_pad=None,
                 stop=None, use_cache=True):
        """Tokens after idx (B, T), each sampled at `temperature` among the top_k likeliest and the smallest set
        holding top_p of the probability (transformers' order: temperature, top-k, top-p); temperature 0 takes the
        likeliest (greedy). A row is done once it produced eot_id or `stop(its new tokens)` says so; a done row is
        padded with eot_id (0 without one), and generation ends when every row is done.
        Prompts of different lengths share a batch left-padded: left_pad (B,) counts each row's padding tokens,
        which no token attends to and the positions skip (lm_eval's batched generation); they must leave room for
        max_new_tokens within block_size.
        The KV cache (use_cache) runs the model over the prompts once, then over one new token per row and step.
        Past block_size the window slides as in nanoGPT (every step recomputes it), cache or not."""
        B, T = idx.shape
        S, dev = self.config.block_size, idx.device
        pad = torch.zeros(B, dtype=torch.long, device=dev) if left_pad is None else left_pad.to(dev)
        if left_pad is not None and (T + max_new_tokens > S or not use_cache):
            raise ValueError(f"left-padded prompts of {T} tokens and {max_new_tokens} new ones must fit block_size={S}"
                             f" and use the KV cache: left-truncate the prompts")
        size = min(T + max_new_tokens, S)
        slot = torch.arange(size, device=dev)
        real = slot >= pad[:, None]  # (B, size): which cache slots hold a token (not padding)
        pos = (slot - pad[:, None]).clamp(min=0)
        if use_cache:  # under autocast the keys and values come out in its dtype; the buffers match them
            autocast = torch.is_autocast_enabled(dev.type)
            dtype = torch.get_autocast_dtype(dev.type) if autocast else self.lm_head.weight.dtype
            hd = self.config.n_embd // self.config.n_head
            kv = [[torch.empty(B, self.config.n_head, size, hd, dtype=dtype, device=dev) for _ in 'kv']
                  for _ in self.transformer.h]
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        for _ in range(max_new_tokens):
            L = idx.size(1)
            if not use_cache or L > S:
                logits = self(idx[:, -S:])[0][:, -1]
            elif L == T:  # the prompts: causal, padding never read (each token also reads itself: no empty row)
                causal, itself = slot[None, :T] <= slot[:T, None], torch.eye(T, dtype=torch.bool, device=dev)
                mask = causal & real[:, None, :T] | itself
                logits = self.forward_cached(idx, pos[:, :T], kv, 0, mask[:, None])
            else:
                logits = self.forward_cached(idx[:, -1:], pos[:, L - 1:L], kv, L - 1, real[:, None, None, :L])
            logits = logits.float()
            if temperature == 0:
                nxt = logits.argmax(-1)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float('inf')
                if top_p < 1.0:  # drop the least likely tokens whose total is at most 1 - top_p; the likeliest stays
                    sorted_logits, order = torch.sort(logits, dim=-1)
                    drop = F.softmax(sorted_logits, dim=-1).cumsum(-1) <= 1 - top_p
                    drop[:, -1] = False
                    logits = logits.masked_fill(torch.zeros_like(drop).scatter(-1, order, drop), -float('inf'))
                nxt = torch.multinomial(F.softmax(logits, dim=-1), num_samples=1)[:, 0]
            nxt = nxt.masked_fill(done, 0 if eot_id is None else eot_id)
            idx = torch.cat((idx, nxt[:, None]), dim=1)
            if eot_id is not None:
                done |= nxt == eot_id
            if stop is not None:
                done |= torch.tensor([not d and stop(row) for d, row in zip(done.tolist(), idx[:, T:].tolist())],
                                     device=dev)
            if done.all():
                break
        return idx


# -----------------------------------------------------------------------------------------------------------------
# the model wrapped for parallel training (torchtitan keeps this beside the model it wraps)


def choose_cpu_paths(spec, model, batch_size, block_size, dtype, compiled, torchrun):
    """On a CPU, kernels.choose_cpu_paths on this model's shapes at one micro-batch: every distinct linear (tokens,
    in, out), the LM head among them, the attention (B, H, T, head_dim) and the loss (tokens, vocab). Under
    torchrun rank 0 decides and the others take its answer, so every rank runs the same calls. compiled: the
    model runs under torch.compile. Returns the paths as a string (the run's config keeps it); on other devices,
    spec as it was (a wrong name stops there too)."""
    if next(model.parameters()).device.type != 'cpu':
        if spec != 'auto':
            kernels.parse_cpu_paths(spec)
        return spec
    c, n = model.config, batch_size * block_size
    shapes = {'linear': sorted({(n, m.in_features, m.out_features) for m in model.modules()
                                if isinstance(m, Linear)} | {(n, c.n_embd, c.padded_vocab)}),
              'attention': (batch_size, c.n_head, block_size, c.n_embd // c.n_head),
              'loss': (n, c.padded_vocab)}
    if not torchrun:
        return kernels.choose_cpu_paths(spec, dtype, compiled, shapes)
    paths = [kernels.choose_cpu_paths(spec, dtype, compiled, shapes) if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(paths, src=0)
    return kernels.choose_cpu_paths(paths[0], dtype, compiled, shapes)


def parallelize(gptconf, device, *, fsdp, compile, activation_checkpointing, replicate, world_size, param_dtype,
                torchrun, local_rank, init=True):
    """A GPT of `gptconf` ready to train, in torchtitan's order: activation checkpointing, then torch.compile (the
    whole model, or each block under FSDP so that its all-gathers stay between compiled regions), then FSDP2 per
    block and at the root (or DDP). Under FSDP the model is built on the meta device (no memory), sharded, and
    only each rank's shard is materialised; with init, rank 0 then builds the whole model on its CPU, as one process
    does, and sends every rank its shard of it (random init of sharded tensors would draw every shard from the
    same RNG state: equal halves). init=False leaves the shards for a checkpoint to fill. Call after
    torch.manual_seed: every run with this seed starts from the same weights, at any process count, FSDP or not.
    Returns (the bare model, what the loop calls: the bare model, or its DDP wrapper)."""
    if replicate > 1 and not fsdp:
        raise ValueError(f"replicate={replicate} is HSDP (FSDP sharding within groups, replicas across them): set "
                         f"fsdp=True")
    if world_size % replicate:
        raise ValueError(f"replicate={replicate} must divide the number of processes ({world_size}): e.g. the node "
                         f"count")
    with torch.device('meta' if fsdp else 'cpu'):
        model = GPT(gptconf)
    model.activation_checkpointing = activation_checkpointing
    if compile and fsdp:
        for block in model.transformer.h:
            block.compile()
    elif compile:
        model.compile()  # in place, so state dict names never carry `_orig_mod.`
    if not fsdp:
        model.to(device)
        if not torchrun:
            return model, model
        return model, DDP(model, device_ids=[local_rank] if str(device).startswith('cuda') else None)
    mp = MixedPrecisionPolicy(param_dtype=param_dtype, reduce_dtype=torch.float32)  # bf16 compute, fp32 grad sums
    # a 2-D mesh: parameters sharded over `shard` (within a node: fast links) and replicated over `replicate`
    # (across nodes, which then exchange one all-reduce of the gradients per step): HSDP; replicate=1 is FSDP
    mesh = init_device_mesh(runtime.device_type(device), (replicate, world_size // replicate),
                            mesh_dim_names=('replicate', 'shard'))
    for block in model.transformer.h:
        fully_shard(block, mesh=mesh, mp_policy=mp)
    fully_shard(model, mesh=mesh, mp_policy=mp)
    model.to_empty(device=device)
    if init:  # (at 10B rank 0 holds the fp32 model in host memory for this, 40 GB, once)
        full = GPT(gptconf).state_dict() if dist.get_rank() == 0 else {}
        set_model_state_dict(model, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
    model.init_rope()  # the rotary tables: buffers, not in any state dict
    return model, model
