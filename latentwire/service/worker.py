"""The model's own thread: HTTP handlers queue jobs here (bounded), so the event loop never runs a model and
health checks answer under load. Answer jobs for one receiver that wait together are decoded as one batch."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from latentwire.errors import Overloaded
from latentwire.system import LatentWire


@dataclass
class Job:
    """One request's model work: `kind` encode (args: question, context) or answer (packet, receiver, question)."""

    kind: str
    args: tuple
    future: Future = field(default_factory=Future)
    queued: float = field(default_factory=time.perf_counter)


class ModelWorker:
    """Runs `model` in one daemon thread; at most `queue_limit` jobs wait (Overloaded beyond), answer jobs of
    one receiver are batched up to `max_batch`, waiting at most `batch_wait_s` for a batch to fill."""

    def __init__(self, model: LatentWire, queue_limit: int = 32, max_batch: int = 8, batch_wait_s: float = 0.002,
                 max_new_tokens: int = 16):
        self.model, self.queue_limit, self.max_batch = model, queue_limit, max_batch
        self.batch_wait_s, self.max_new_tokens = batch_wait_s, max_new_tokens
        self.stats: Counter = Counter()
        self._jobs: deque[Job] = deque()
        self._ready = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="latentwire-model", daemon=True)

    def start(self) -> ModelWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Finish the running batch, fail the waiting jobs, end the thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        self._thread.join(timeout)

    @property
    def depth(self) -> int:
        """Jobs waiting (not counting the batch running now)."""
        return len(self._jobs)

    def submit(self, kind: str, *args) -> Future:
        """Queue a job; its Future gets the result dict. Overloaded when `queue_limit` jobs already wait."""
        job = Job(kind, args)
        with self._ready:
            if self._stopping:
                raise Overloaded("the server is shutting down")
            if len(self._jobs) >= self.queue_limit:
                self.stats["refused"] += 1
                raise Overloaded(f"{len(self._jobs)} requests already wait (serve.queue_limit={self.queue_limit})")
            self._jobs.append(job)
            self._ready.notify()
        return job.future

    def _take(self) -> list[Job]:
        """The next batch: the oldest live job, plus (for answers) waiting answers for the same receiver."""
        with self._ready:
            while True:
                while not self._jobs and not self._stopping:
                    self._ready.wait()
                if self._stopping:
                    return []
                first = self._jobs.popleft()
                if first.future.set_running_or_notify_cancel():     # False: its request timed out
                    break
            if first.kind != "answer" or self.max_batch == 1:
                return [first]
            deadline = time.perf_counter() + self.batch_wait_s
            while len(self._jobs) < self.max_batch - 1 and time.perf_counter() < deadline:
                self._ready.wait(max(deadline - time.perf_counter(), 0))
            batch = [first]
            for job in list(self._jobs):
                if len(batch) == self.max_batch:
                    break
                if job.kind == "answer" and job.args[1] == first.args[1]:
                    self._jobs.remove(job)
                    if job.future.set_running_or_notify_cancel():
                        batch.append(job)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if not batch:
                break
            started = time.perf_counter()
            try:
                (self._answer if batch[0].kind == "answer" else self._encode)(batch, started)
            except Exception as error:  # noqa: BLE001 (a model failure fails its requests, never the thread)
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(error)
        with self._ready:
            for job in self._jobs:
                job.future.cancel()
            self._jobs.clear()

    def _encode(self, batch: list[Job], started: float) -> None:
        (job,) = batch
        packet = self.model.encode(*job.args)
        self.stats["encoded"] += 1
        job.future.set_result({"packet": packet, "sender_ms": _ms(started), "queue_ms": _ms(job.queued, started)})

    def _answer(self, batch: list[Job], started: float) -> None:
        receiver, ready = batch[0].args[1], []
        for job in batch:
            packet, _, question = job.args
            try:
                ready.append((job, self.model.read_packet(packet, receiver, question)))
            except ValueError as error:          # PacketError and friends: that request alone fails
                job.future.set_exception(error)
        if not ready:
            return
        answers = self.model.answer_prompts([prompt for _, prompt in ready], receiver, self.max_new_tokens)
        self.stats["batches"] += 1
        self.stats["answered"] += len(ready)
        for (job, _), answer in zip(ready, answers):
            job.future.set_result({"answer": answer, "receiver": receiver, "receiver_ms": _ms(started),
                                   "queue_ms": _ms(job.queued, started), "batch": len(ready)})


def _ms(start: float, end: float | None = None) -> float:
    return round(1000 * ((end if end is not None else time.perf_counter()) - start), 2)
