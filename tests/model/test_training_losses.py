"""The training losses equal direct re-implementations of the formulas (loops over queries and pairs), 1e-6."""

from __future__ import annotations

import math
import socket

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from e2rank_integrations.training import e2rank_loss, gather_across_devices, infonce_loss, ranknet_loss  # noqa: E402

F = torch.nn.functional


def unit(*shape, seed):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=generator, dtype=torch.float64), dim=-1)


def permutations(batch, slate, seed):
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(slate, generator=generator) for _ in range(batch)])


def reference_infonce(q, d, temperature):
    """-log softmax of each query's positive (row i * slate) among all passages of the batch, averaged."""
    batch, slate = q.shape[0], d.shape[0] // q.shape[0]
    total = 0.0
    for i in range(batch):
        logits = [float(q[i] @ d[j]) / temperature for j in range(d.shape[0])]
        top = max(logits)
        log_z = top + math.log(sum(math.exp(x - top) for x in logits))
        total += log_z - logits[i * slate]
    return total / batch


def reference_ranknet(scores, ranking):
    """Mean over every (better, worse) pair of the teacher order of log(1 + exp(-(s_better - s_worse)))."""
    losses = []
    for b in range(scores.shape[0]):
        order = [int(i) for i in ranking[b]]
        for a in range(len(order)):
            for c in range(a + 1, len(order)):
                diff = float(scores[b, order[a]] - scores[b, order[c]])
                losses.append(math.log1p(math.exp(-diff)))
    return sum(losses) / len(losses)


@pytest.mark.parametrize(("batch", "slate", "temperature"), [(1, 2, 0.03), (3, 5, 0.03), (4, 20, 0.1)])
def test_infonce_equals_the_formula(batch, slate, temperature):
    q, d = unit(batch, 16, seed=1), unit(batch * slate, 16, seed=2)
    assert float(infonce_loss(q, d, temperature)) == pytest.approx(reference_infonce(q, d, temperature), abs=1e-6)


def test_infonce_positive_is_the_first_of_each_slate():
    # Make each query equal to the first passage of its own slate: the loss must then be small, and large when
    # the queries are matched with another slate's first passage.
    batch, slate = 3, 4
    d = unit(batch * slate, 32, seed=3)
    q = d[::slate].clone()
    assert float(infonce_loss(q, d, 0.03)) < 0.05
    assert float(infonce_loss(q.roll(1, dims=0), d, 0.03)) > 10


def test_infonce_refuses_a_misshapen_batch():
    with pytest.raises(ValueError, match="not a multiple"):
        infonce_loss(unit(3, 8, seed=0), unit(7, 8, seed=1))


@pytest.mark.parametrize(("batch", "slate"), [(1, 2), (2, 5), (3, 20)])
def test_ranknet_equals_the_formula(batch, slate):
    generator = torch.Generator().manual_seed(4)
    scores = 10 * torch.randn(batch, slate, generator=generator, dtype=torch.float64)
    ranking = permutations(batch, slate, seed=5)
    assert float(ranknet_loss(scores, ranking)) == pytest.approx(reference_ranknet(scores, ranking), abs=1e-6)


def test_ranknet_prefers_the_teacher_order():
    ranking = torch.tensor([[2, 0, 1]])
    agreeing = torch.tensor([[5.0, 1.0, 9.0]])  # scores sorted as the teacher sorts: 2, 0, 1
    assert float(ranknet_loss(agreeing, ranking)) < float(ranknet_loss(agreeing.flip(1), ranking))


def test_e2rank_loss_is_the_weighted_sum_in_the_authors_layout():
    batch, slate, dim = 3, 6, 16
    q, prompt = unit(batch, dim, seed=6), unit(batch, dim, seed=7)
    d = unit(batch * slate, dim, seed=8)  # slate after slate, in data order
    ranking = permutations(batch, slate, seed=9)
    loss = e2rank_loss(q, d, prompt, ranking, temperature=0.03, ranknet_scale=10.0, ranknet_weight=2.0)

    # The authors reorder each slate best first before InfoNCE, so query i's positive is its teacher-best passage.
    best_first = torch.cat([d[b * slate + ranking[b]] for b in range(batch)])
    embedding = reference_infonce(q, best_first, 0.03)
    scores = torch.stack([10.0 * (d[b * slate : (b + 1) * slate] @ prompt[b]) for b in range(batch)])
    ranking_term = reference_ranknet(scores, ranking)
    assert float(loss.embedding) == pytest.approx(embedding, abs=1e-6)
    assert float(loss.ranking) == pytest.approx(ranking_term, abs=1e-6)
    assert float(loss.total) == pytest.approx(embedding + 2.0 * ranking_term, abs=1e-6)


def test_e2rank_loss_applies_gather_to_queries_and_best_first_passages():
    batch, slate, dim = 2, 3, 8
    q, prompt, d = unit(batch, dim, seed=10), unit(batch, dim, seed=11), unit(batch * slate, dim, seed=12)
    ranking = permutations(batch, slate, seed=13)
    seen = []
    loss = e2rank_loss(q, d, prompt, ranking, gather=lambda t: seen.append(t) or t)
    best_first = torch.cat([d[b * slate + ranking[b]] for b in range(batch)])
    assert torch.equal(seen[0], q)
    assert torch.equal(seen[1], best_first)
    assert float(loss.embedding) == pytest.approx(reference_infonce(q, best_first, 0.03), abs=1e-6)


# ---------------------------------------------------------------------------- across devices (two CPU processes)

WORLD = 2
BATCH, SLATE, DIM = 2, 3, 8


def shard(rank):
    """Rank ``rank``'s queries and best-first passages (from one seed, so every process can rebuild all of them)."""
    return unit(BATCH, DIM, seed=100 + rank), unit(BATCH * SLATE, DIM, seed=200 + rank)


def gathered_loss(rank, port):
    """Join a two-process gloo group as ``rank``; InfoNCE on the gathered batch; (loss, grad of q, grad of d)."""
    import datetime

    import torch.distributed as dist

    dist.init_process_group(
        "gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=300),  # a hang guard: the spawned rank imports torch, slow when busy
    )
    try:
        q, d = (t.requires_grad_() for t in shard(rank))
        loss = infonce_loss(gather_across_devices(q), gather_across_devices(d), 0.03)
        loss.backward()
        return float(loss.detach()), q.grad.clone(), d.grad.clone()
    finally:
        dist.destroy_process_group()


def other_rank(port, queue):
    loss, q_grad, d_grad = gathered_loss(1, port)
    queue.put((loss, q_grad.tolist(), d_grad.tolist()))  # plain values: a tensor would travel as shared memory


def test_gathered_negatives_are_every_device_in_rank_order():
    """Each process's loss is the loss of the whole gathered batch, whose positives sit at i * slate in rank order;
    each process gets the gradient of that loss for its own rows. This process is rank 0, a spawned one rank 1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = torch.multiprocessing.get_context("spawn")
    queue = context.SimpleQueue()
    child = context.Process(target=other_rank, args=(port, queue))
    child.start()
    try:
        results = {0: gathered_loss(0, port)}
        loss, q_grad, d_grad = queue.get()
        results[1] = (loss, torch.tensor(q_grad, dtype=torch.float64), torch.tensor(d_grad, dtype=torch.float64))
    finally:
        child.join(timeout=120)
    assert child.exitcode == 0

    shards = [shard(rank) for rank in range(WORLD)]
    q_all = torch.cat([q for q, _ in shards]).requires_grad_()
    d_all = torch.cat([d for _, d in shards]).requires_grad_()
    expected = reference_infonce(q_all.detach(), d_all.detach(), 0.03)
    infonce_loss(q_all, d_all, 0.03).backward()
    for rank in range(WORLD):
        loss, q_grad, d_grad = results[rank]
        assert loss == pytest.approx(expected, abs=1e-6)
        assert torch.allclose(q_grad, q_all.grad[rank * BATCH : (rank + 1) * BATCH], atol=1e-9)
        assert torch.allclose(d_grad, d_all.grad[rank * BATCH * SLATE : (rank + 1) * BATCH * SLATE], atol=1e-9)


def test_gather_is_the_identity_on_one_process():
    t = unit(2, 4, seed=0)
    assert gather_across_devices(t) is t


def test_embedding_grad_scale_multiplies_the_infonce_gradient_not_its_value():
    q, d, prompt = unit(2, 8, seed=1), unit(6, 8, seed=2), unit(2, 8, seed=3)
    ranking = permutations(2, 3, seed=4)
    grads, values = [], []
    for scale in (1.0, 2.0):
        leaf = q.clone().requires_grad_()
        loss = e2rank_loss(leaf, d, prompt, ranking, ranknet_weight=0.0, embedding_grad_scale=scale)
        loss.total.backward()
        grads.append(leaf.grad)
        values.append(float(loss.embedding.detach()))
    assert values[0] == pytest.approx(values[1], rel=1e-12)
    torch.testing.assert_close(grads[1], 2 * grads[0])


def reference_graded_ranknet(scores, grades):
    """Mean over every pair with grade_a > grade_c of log(1 + exp(-(s_a - s_c))); equal grades left out."""
    losses = []
    for b in range(scores.shape[0]):
        for a in range(scores.shape[1]):
            for c in range(scores.shape[1]):
                if grades[b][a] > grades[b][c]:
                    losses.append(math.log1p(math.exp(-float(scores[b, a] - scores[b, c]))))
    return sum(losses) / len(losses)


def test_graded_ranknet_learns_only_pairs_of_different_grades():
    generator = torch.Generator().manual_seed(9)
    scores = 10 * torch.randn(3, 6, generator=generator, dtype=torch.float64)
    grades = torch.tensor([[1, 0, 0, 2, 0, 1], [0, 0, 0, 0, 0, 1], [3, 2, 1, 0, 5, 4]], dtype=torch.float64)
    ranking = torch.stack([torch.tensor(sorted(range(6), key=lambda i: -float(row[i]))) for row in grades])
    got = float(ranknet_loss(scores, ranking, grades))
    assert got == pytest.approx(reference_graded_ranknet(scores, grades.tolist()), abs=1e-9)
    total_order = (6 - torch.argsort(ranking, dim=1)).to(torch.float64)  # distinct grades: every pair counts
    assert float(ranknet_loss(scores, ranking, total_order)) == pytest.approx(float(ranknet_loss(scores, ranking)))
    assert float(ranknet_loss(scores, ranking, torch.ones_like(grades))) == 0.0  # no pair to learn
