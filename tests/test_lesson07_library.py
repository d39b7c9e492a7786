"""What lesson 07 relies on in the library: ftkit's LoRA layer is the formula the lesson writes by hand."""
import torch
from torch import nn

from ftkit.tuning.lora import LoRALinear


def test_lora_linear_is_w_x_plus_scaled_b_a_x():
    torch.manual_seed(0)
    base = nn.Linear(12, 7)
    layer = LoRALinear(base, r=3, alpha=6)
    with torch.no_grad():
        layer.lora_B.weight.normal_()  # a trained-looking B, not zero
    x = torch.randn(5, 12)
    by_hand = base(x) + (6 / 3) * x @ layer.lora_A.weight.T @ layer.lora_B.weight.T
    assert torch.allclose(layer(x), by_hand, atol=1e-5)
    new = sum(p.numel() for n, p in layer.named_parameters() if not n.startswith("base_layer"))
    assert new == 3 * (12 + 7)
