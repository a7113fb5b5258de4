"""Feature gathering: node ids per hop [T, n_h] -> feature blocks [T, n_h, F], one index_select for all hops."""

from __future__ import annotations

import torch


def gather_blocks(table: torch.Tensor, hops: list[torch.Tensor], device: torch.device | None = None
                  ) -> list[torch.Tensor]:
    """Rows of ``table`` ([T, N, F] per-step or [N, F] shared) for every hop; float32 on ``device``."""
    T = hops[0].shape[0]
    if table.dim() == 3:
        N = table.shape[1]
        offset = (torch.arange(T) * N).view(T, 1)
        flat_ids = torch.cat([(h + offset).reshape(-1) for h in hops])
        rows = table.reshape(T * N, -1).index_select(0, flat_ids.to(table.device))
    else:
        rows = table.index_select(0, torch.cat([h.reshape(-1) for h in hops]).to(table.device))
    rows = rows.to(device=device, dtype=torch.float32, non_blocking=True)
    sizes = [h.numel() for h in hops]
    return [r.view(T, h.shape[1], -1) for r, h in zip(torch.split(rows, sizes), hops, strict=True)]
