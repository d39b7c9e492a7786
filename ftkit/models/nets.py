"""The zoo's architectures: plain ``nn.Module``s with readable attribute names.

- ``GlyphResNet``: a small ResNet (He et al. 2016) for 1 x 32 x 32 images: a stem that
  downsamples 4x (conv + max-pool, as ResNet's stem does), three residual blocks with
  BatchNorm, global average pooling and a linear head ``fc``. Layer groups follow the
  attribute names: ``stem``, ``block1``, ``block2``, ``block3``, ``fc``.
- ``GlyphViT``: a tiny Vision Transformer (Dosovitskiy et al. 2021): 4 x 4 patches (on
  the digits-like 32 x 32 images one patch is one pixel of the 8 x 8 original), a class
  token, learned position embeddings, pre-norm transformer blocks with timm's names
  (``attn.qkv``, ``attn.proj``, ``mlp.fc1``, ``mlp.fc2``: LoRA can target them), ``norm``, ``head``.
- ``gpt_config``: the configuration of the tiny GPT, a real Hugging Face
  ``GPT2LMHeadModel`` (Radford et al. 2019), so ``generate()``, peft and every Hugging
  Face code path work on it unchanged.

Example:
    >>> from ftkit.models.nets import GlyphResNet
    >>> net = GlyphResNet(num_classes=10)
    >>> net(torch.zeros(2, 1, 32, 32)).shape
    torch.Size([2, 10])
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm, plus the input (He et al. 2016, "basic block")."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # When the shape changes, a 1x1 convolution projects the input so it can be added.
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class GlyphResNet(nn.Module):
    """A small ResNet for 1 x 32 x 32 images: stem, three residual blocks, pooling, ``fc``."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (48, 96, 192), in_channels: int = 1):
        super().__init__()
        w1, w2, w3 = widths
        # 32x32 -> 8x8: the digits-like images hold 8x8 pixels of information (upsampled to 32x32).
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w1, 3, 2, 1, bias=False), nn.BatchNorm2d(w1),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(2))
        self.block1 = ResidualBlock(w1, w1)  # 8x8
        self.block2 = ResidualBlock(w1, w2, stride=2)  # 4x4
        self.block3 = ResidualBlock(w2, w3, stride=2)  # 2x2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled features the head sees: ``[N, widths[-1]]``."""
        x = self.block3(self.block2(self.block1(self.stem(x))))
        return torch.flatten(self.pool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.forward_features(x))


class Attention(nn.Module):
    """Multi-head self-attention with one ``qkv`` projection and an output ``proj`` (timm's names)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(d_head)) v
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class GlyphViT(nn.Module):
    """A tiny ViT for 1 x 32 x 32 images: 4x4 patches, class token, ``blocks``, ``norm``, ``head``."""

    def __init__(self, num_classes: int = 10, image_size: int = 32, patch_size: int = 4, dim: int = 64,
                 depth: int = 4, heads: int = 4, mlp_ratio: float = 2.0, in_channels: int = 1):
        super().__init__()
        grid = image_size // patch_size
        self.patch_embed = nn.Conv2d(in_channels, dim, patch_size, patch_size)  # one token per patch
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(TransformerBlock(dim, heads, mlp_ratio) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The class token's final representation: ``[N, dim]``."""
        x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [N, patches, dim]
        x = torch.cat([self.cls_token.expand(len(x), -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)[:, 0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


def gpt_config(vocab_size: int, bos_token_id: int, eos_token_id: int, *, n_positions: int = 256,
               n_embd: int = 128, n_layer: int = 4, n_head: int = 4, dropout: float = 0.0):
    """A tiny GPT-2 configuration (about 1M parameters with a 2,048-token vocabulary)."""
    from transformers import GPT2Config

    # "gelu" is one fused op; GPT-2's "gelu_new" tanh approximation is a chain of small ops, slower on a CPU.
    return GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
                      n_head=n_head, activation_function="gelu", resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout,
                      bos_token_id=bos_token_id, eos_token_id=eos_token_id, pad_token_id=eos_token_id,
                      architectures=["GPT2LMHeadModel"])
