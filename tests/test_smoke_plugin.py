from queueing import JobStatus, Queue


def test_enqueue_then_read_without_worker(queue: Queue) -> None:
    job = queue.enqueue("anything", {"x": 1})
    assert queue.get_job(job.id).status is JobStatus.PENDING
