"""The contrastive loss shared by SimCSE and supervised training, with negatives gathered across processes."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F


def gather_with_grad(local: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Concatenate `local` (n_i, dim) from every process; returns (all rows, offset of this process's rows).

    all_gather carries no gradient, so this process's own slice is put back as the local tensor: the
    loss then back-propagates through the local embeddings, and DDP averages the gradients, which is
    what the reference implementation does. Processes may hold different numbers of rows.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(world)]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], device=local.device))
    sizes = [int(s.item()) for s in sizes]
    padded = torch.zeros(max(sizes), *local.shape[1:], dtype=local.dtype, device=local.device)
    padded[: local.shape[0]] = local.detach()
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    parts = [g[:n] for g, n in zip(gathered, sizes)]
    parts[rank] = local
    return torch.cat(parts), sum(sizes[:rank])


def contrastive_loss(queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None = None,
                     scale: float = 20.0, gather: bool = True) -> torch.Tensor:
    """InfoNCE over cosine similarity x `scale`: query i must pick positive i among all positives
    (in-batch negatives, from every process when `gather`) and all hard negatives.

    Example:
        >>> loss = contrastive_loss(model(q), model(d), scale=20.0)
    """
    queries, positives = queries.float(), positives.float()
    if gather:
        all_positives, offset = gather_with_grad(positives)
        all_negatives = gather_with_grad(negatives.float())[0] if negatives is not None else None
    else:
        all_positives, offset = positives, 0
        all_negatives = negatives.float() if negatives is not None else None
    candidates = all_positives if all_negatives is None else torch.cat([all_positives, all_negatives])
    scores = F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).T * scale
    labels = torch.arange(queries.shape[0], device=queries.device) + offset
    return F.cross_entropy(scores, labels)


def retrieval_accuracy(queries: torch.Tensor, documents: torch.Tensor) -> float:
    """Fraction of queries whose most similar document (cosine) is the one at the same index."""
    scores = F.normalize(queries.float(), dim=-1) @ F.normalize(documents.float(), dim=-1).T
    return (scores.argmax(dim=1) == torch.arange(len(queries), device=scores.device)).float().mean().item()
