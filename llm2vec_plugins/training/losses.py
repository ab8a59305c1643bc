"""The contrastive loss shared by SimCSE and supervised training, over the batch of every process."""
from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from llm2vec_plugins.training.config import DISTILL_LOSSES


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(local: torch.Tensor) -> torch.Tensor:
    """Concatenate `local` (n_i, dim) from every process, in rank order, keeping the gradient.

    The backward pass sums, over processes, the gradient that each process's loss sends to this
    process's rows (torch.distributed.nn's all_gather, as the reference implementation's). When every
    process computes the same loss over the gathered batch, its rows thus get world_size times their
    gradient of that loss, and DDP's average over processes leaves exactly the gradient of one process
    on the combined batch. Processes may hold different numbers of rows (they are padded to the largest
    for the collective, and the padding is cut off again). Without a process group: `local` itself.

    Example:
        >>> everyone = gather_with_grad(local_embeddings)   # (sum of n_i, dim), differentiable
    """
    if not _distributed():
        return local
    from torch.distributed.nn.functional import all_gather

    sizes = [torch.zeros(1, dtype=torch.long, device=local.device) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, torch.tensor([local.shape[0]], device=local.device))
    sizes = [int(s.item()) for s in sizes]
    padded = F.pad(local, (0, 0) * (local.dim() - 1) + (0, max(sizes) - local.shape[0]))
    return torch.cat([part[:n] for part, n in zip(all_gather(padded), sizes)])


def contrastive_loss(queries: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor | None = None,
                     scale: float = 20.0, gather: bool = True) -> torch.Tensor:
    """InfoNCE over cosine similarity x `scale`: query i must pick positive i among all positives
    (in-batch negatives) and all hard negatives.

    With `gather` under torch.distributed, the queries, positives and negatives of every process are
    gathered with their gradient and each process computes the loss of the whole global batch, as the
    reference does: the loss and, after DDP's gradient averaging, the parameter gradients are those of
    one process holding every row (see `gather_with_grad`).

    Example:
        >>> loss = contrastive_loss(model(q), model(d), scale=20.0)
    """
    if queries.shape[0] != positives.shape[0]:
        raise ValueError(f"{queries.shape[0]} queries but {positives.shape[0]} positives; each query needs one positive")
    queries, positives = queries.float(), positives.float()
    negatives = negatives.float() if negatives is not None else None
    if gather:
        queries, positives = gather_with_grad(queries), gather_with_grad(positives)
        negatives = gather_with_grad(negatives) if negatives is not None else None
    candidates = positives if negatives is None else torch.cat([positives, negatives])
    scores = F.normalize(queries, dim=-1) @ F.normalize(candidates, dim=-1).T * scale
    labels = torch.arange(queries.shape[0], device=queries.device)
    return F.cross_entropy(scores, labels)


def retrieval_accuracy(queries: torch.Tensor, documents: torch.Tensor) -> float:
    """Fraction of queries whose most similar document (cosine) is the one at the same index."""
    scores = F.normalize(queries.float(), dim=-1) @ F.normalize(documents.float(), dim=-1).T
    return (scores.argmax(dim=1) == torch.arange(len(queries), device=scores.device)).float().mean().item()


def similarity_distill_loss(student: torch.Tensor, teacher: torch.Tensor, mode: str = "mse", scale: float = 20.0,
                            gather: bool = True) -> torch.Tensor:
    """Match the student's in-batch cosine similarities to the teacher's: the two may differ in dimension.

    "mse": mean squared difference of the off-diagonal cosines; "kl": KL(teacher || student) between
    each row's softmax of cosine x `scale`, the diagonal left out; "align": 1 - cosine of each student
    row with its teacher row, which needs the teacher's rows in the student's space (`rotate_into`): a
    target per dimension of every text, not only per pair, and at zero loss all cosines are the
    teacher's. Under torch.distributed the rows of every process are gathered (the student's with their
    gradient), as for the contrastive loss; "align" needs no other process's rows.

    Example:
        >>> loss = similarity_distill_loss(model(features), teacher_vectors)
    """
    if student.shape[0] != teacher.shape[0]:
        raise ValueError(f"{student.shape[0]} student rows but {teacher.shape[0]} teacher rows")
    student, teacher = student.float(), teacher.float().detach()
    if mode == "align":
        if student.shape[1] != teacher.shape[1]:
            raise ValueError(f"'align' needs the teacher rotated into the student's {student.shape[1]} dimensions, "
                             f"got {teacher.shape[1]}")
        return (1 - F.cosine_similarity(student, teacher, dim=-1)).mean()
    if gather:
        student, teacher = gather_with_grad(student), gather_with_grad(teacher)
    s = F.normalize(student, dim=-1) @ F.normalize(student, dim=-1).T
    t = F.normalize(teacher, dim=-1) @ F.normalize(teacher, dim=-1).T
    off = ~torch.eye(s.shape[0], dtype=torch.bool, device=s.device)
    if mode == "mse":
        return (s - t)[off].pow(2).mean()
    if mode == "kl":
        fill = torch.finfo(s.dtype).min
        log_s = F.log_softmax((s * scale).masked_fill(~off, fill), dim=-1)
        log_t = F.log_softmax((t * scale).masked_fill(~off, fill), dim=-1)
        return (log_t.exp() * (log_t - log_s)).masked_fill(~off, 0).sum(-1).mean()
    raise ValueError(f"unknown distillation loss {mode!r}; choose one of {', '.join(DISTILL_LOSSES)}")


def rotate_into(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """The orthogonal map (teacher_dim, student_dim), rows orthonormal, that best carries the teacher's
    unit rows onto the student's (orthogonal Procrustes): `teacher @ map` keeps every teacher cosine and
    lies as close as a rotation can to where the student already puts those texts. Needs
    teacher_dim <= student_dim (a wider teacher goes through `principal_map` first).

    Example:
        >>> targets = teacher_vectors @ rotate_into(teacher_sample, student_sample)   # (n, student_dim)
    """
    if teacher.shape[0] != student.shape[0]:
        raise ValueError(f"{teacher.shape[0]} teacher rows but {student.shape[0]} student rows")
    if teacher.shape[1] > student.shape[1]:
        raise ValueError(f"a {teacher.shape[1]}-dimensional teacher does not fit into a {student.shape[1]}-dimensional "
                         "student without losing cosines; project it first (principal_map)")
    cross = F.normalize(teacher.double(), dim=-1).T @ F.normalize(student.double(), dim=-1)
    u, _, vh = torch.linalg.svd(cross, full_matrices=False)
    return (u @ vh).float()


def principal_map(vectors: torch.Tensor, dim: int) -> tuple[torch.Tensor, float]:
    """The orthonormal map (vectors_dim, dim) onto the `dim` directions that hold most of the unit rows'
    squared length, and the share of it they hold: uncentred PCA, since cosines (not variances around a
    mean) are what a narrower space must keep of a wider teacher's. That share is the fraction of every
    squared cosine-norm kept; 1.0 when the rows span at most `dim` directions.

    Example:
        >>> basis, kept = principal_map(teacher_vectors, 576)   # a 768-d teacher for a 576-d student
        >>> narrow = teacher_vectors @ basis
    """
    if not 0 < dim <= vectors.shape[1]:
        raise ValueError(f"cannot keep {dim} of {vectors.shape[1]} dimensions")
    unit = F.normalize(vectors.double(), dim=-1)
    values, directions = torch.linalg.eigh(unit.T @ unit)  # ascending eigenvalues
    return directions[:, -dim:].flip(-1).float(), float(values[-dim:].sum() / values.sum())
