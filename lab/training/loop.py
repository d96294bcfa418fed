"""The training loop of the lab: ``fit(task, out)`` trains a ``lab.training.task.Task`` (a distillation, a
teacher) in the run folder ``out``. Read ``_Loop.run``: it is the whole loop.

    open the folder (one writer) and the store -> task.setup -> resume from the newest readable checkpoint
    (or evaluate and checkpoint the start) -> repeat until task.done: task.step -> finite? -> backward, average
    over ranks, clip, optimizer step -> log -> evaluate when due -> task.after_step -> checkpoint when due
    -> the end: evaluate, checkpoint, the store's final record.

What the loop owns, for every kind of run:

- the run folder (``lab.training.run_folder``: a user's folder is refused, one writer at a time) and the run
  store (``lab.runs.store``: scalars, events, checkpoints; a resumed run forgets what was logged after its
  checkpoint, so each step is logged once, bit for bit as an uninterrupted run on the same machine);
- signals: SIGTERM / Ctrl-C during the loop finish the step, checkpoint it and stop as ``interrupted``;
  before it (setup, minutes of caching) they interrupt at once (``lab.training.signals``);
- the learning rate (``lab.training.schedule.lr_at`` at the task's ``Schedule``), grad clipping, DDP
  (``lab.training.distributed``: the task's module wrapped, other gradients averaged, logged scalars averaged,
  rank 0's clock and signal deciding for all ranks, only rank 0 writing);
- the NaN policy: every step's losses are checked before the update; a non-finite one stops the run as
  ``failed`` with ``TrainingError``, which names the culprit and the last usable checkpoint;
- checkpoints: at the start, every ``checkpoint_every`` steps and ``checkpoint_minutes``, when the task asks
  (a phase switch, a new best, an export), on a stop and at the end; one state object: the task's tensors and
  state plus the loop's (step, training time, torch / CUDA RNG, every rank's generators);
- the CPU's convolutions: every float32 3D conv of the run (the frozen teacher's, the student's forward)
  runs oneDNN (``lab.runtime.fused.conv.onednn_conv3d``), where ATen would give a causal step's few frames
  to slow_conv3d; gradients come from ATen's own conv backward either way;
- finish / fail: ``finished`` when the task completed, ``interrupted`` on a signal, Ctrl-C or ``stop_at``,
  ``failed`` (with the error) otherwise; a resume that fails in its setup leaves the run's status as it was.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

import torch

from lab.errors import CheckpointError, ConfigError, LabError
from lab.progress import Progress
from lab.runtime.fused.conv import onednn_conv3d
from lab.runs.store import RunStore, is_run
from lab.training.checkpoints import CheckpointFolder, log_set_aside, restore_checkpoint_records
from lab.training.config import changed_keys
from lab.training.distributed import DistEnv
from lab.training.hooks import RunStoreLogger, StepState, as_callback
from lab.training.run_folder import UNREADABLE_PREFIX, open_run_folder
from lab.training.schedule import lr_at
from lab.training.signals import StopOnSignal, signals_interrupt
from lab.training.task import RunContext, Task

log = logging.getLogger("lab")


class TrainingError(LabError):
    """Training cannot go on (a NaN/inf loss); the message names the last usable checkpoint."""


def fit(task: Task, out, *, resume: bool = False, overwrite: bool = False, callbacks=(), stop_at: int | None = None,
        pre_store: bool = False) -> dict:
    """Train ``task`` in the run folder ``out`` (new, empty, or with ``resume`` a run of the task's kind;
    ``overwrite`` replaces a run's own files; ``pre_store``: ``out`` holds a run from before run stores, resumed
    as one). ``stop_at`` stops (checkpointed, as if interrupted) at that step. Returns the task's final record;
    under ``torchrun`` every rank returns rank 0's."""
    out = Path(out)
    env = DistEnv(task.device)
    try:
        lock = open_run_folder(out, resume, overwrite, kind=task.kind, flag=task.flag,
                               can_overwrite=task.can_overwrite, pre_store=pre_store) if env.main else None
    except BaseException:
        env.close()
        raise
    try:
        with signals_interrupt(), onednn_conv3d(env.device):
            return _Loop(task, out, env, callbacks).run(resume, stop_at)
    finally:
        if lock is not None:
            lock.release()
        env.close()


class _Loop:
    def __init__(self, task: Task, out: Path, env: DistEnv, callbacks):
        self.task, self.out, self.env = task, out, env
        self.callbacks = [as_callback(c) for c in callbacks]
        if not env.main:
            self.callbacks = [c for c in self.callbacks if getattr(c, "all_ranks", False)]
        self.folder = CheckpointFolder(out, task.state_keys, task.weights_prefix)
        self.step, self.wall, self.last_ckpt = 0, 0.0, time.time()
        self.store: RunStore | None = None

    # -- the loop -----------------------------------------------------------------------------------
    def run(self, resume: bool, stop_at: int | None) -> dict:
        task, env = self.task, self.env
        created = self._open_store(resume)
        ctx = RunContext(self.out, env, self.store, self.emit, self.warn)
        self.ctx = ctx
        try:
            model = env.wrap(task.setup(ctx))
            restored = self._restore() if resume else None
            if restored is None or created:
                task.begin(self.step, restored=restored is not None)
        except BaseException as exc:
            if resume and self.store and not created:
                self._resume_failed(exc)
            else:
                self._fail(exc)
            raise
        cad = task.cadence
        left = task.steps_left(self.step) if stop_at is None else min(task.steps_left(self.step), stop_at - self.step)
        bar = Progress(task.label, max(0, left), unit="step") if env.main else None
        signalled = False
        try:
            with StopOnSignal() as stop:
                if restored is None:
                    self._evaluate()             # step 0: what training starts from
                    self._checkpoint()           # so even the start can be resumed (and be 'best')
                while not task.done(self.step, self.wall) and (stop_at is None or self.step < stop_at):
                    self.step += 1
                    scalars, state = self._train_step(model, logged=self._log_due(stop_at))
                    if scalars is not None:
                        self.emit("on_step", state)
                    if bar is not None:
                        loss = (scalars or {}).get("train/loss")
                        bar.update(note=None if loss is None else f"{state.phase_name}, loss {loss:.4g}")
                    metrics = self._evaluate() if cad.eval_every and self.step % cad.eval_every == 0 else None
                    wanted = task.after_step(self.step, scalars, metrics)
                    if bar is not None and stop_at is None:  # a phase that ended early shortens the run
                        bar.set_total(bar.n + task.steps_left(self.step))
                    due = cad.checkpoint_every and self.step % cad.checkpoint_every == 0
                    timed = bool(cad.checkpoint_minutes) and time.time() - self.last_ckpt > 60 * cad.checkpoint_minutes
                    # Rank 0's clocks, signal and task decide, so all ranks checkpoint and stop at the same step.
                    timed, signalled, wanted, self.wall = env.broadcast((timed, stop.requested, wanted, self.wall))
                    if signalled:
                        break  # checkpointed below, as every end of the loop is
                    if due or timed or wanted:
                        self._checkpoint()
            return self._end(signalled or not task.complete(self.step), signalled)
        except BaseException as exc:
            self._fail(exc)
            raise
        finally:
            if bar is not None:
                bar.close()

    def _log_due(self, stop_at) -> bool:
        """Whether this step's scalars are read and logged: every ``log_every`` steps and the last one."""
        every = self.task.cadence.log_every
        return self.step % every == 0 or self.step == stop_at or self.task.done(self.step, self.wall)

    def _train_step(self, model, logged: bool) -> tuple[dict | None, StepState]:
        """One optimizer step of every objective; the scalars when ``logged`` (else None: reading them would wait
        for the GPU)."""
        task, env = self.task, self.env
        t0 = time.perf_counter()
        lr = lr_at(*task.schedule(self.step, self.wall))
        out = task.step(self.step, model)
        self._check_finite(out)
        grad_norm = None
        for o in out.objectives:
            if o.scheduled:
                for group in o.optimizer.param_groups:
                    group["lr"] = lr
            o.optimizer.zero_grad(set_to_none=True)
            o.loss.backward()
            if not o.in_ddp:
                env.average_grads(o.params)
            if o.clip > 0:
                norm = torch.nn.utils.clip_grad_norm_(o.params, o.clip)
                grad_norm = norm if grad_norm is None else grad_norm
            o.optimizer.step()
        task.after_update()
        state = StepState(self.step, out.phase, out.phase_name)
        if not logged:
            self.wall += time.perf_counter() - t0
            return None, state
        if env.device.type == "cuda":
            torch.cuda.synchronize(env.device)  # logged step times are the GPU's, not the launch queue's
        scalars = {k: float(v) for k, v in out.scalars.items()}
        scalars["lr"] = lr
        if grad_norm is not None:
            scalars["train/grad_norm"] = float(grad_norm)
        scalars = env.mean(scalars)
        step_s = time.perf_counter() - t0
        self.wall += step_s
        scalars.update({"perf/step_s": step_s, "perf/samples_per_s": out.samples * env.world / step_s,
                        "perf/wall_s": self.wall})
        if env.device.type == "cuda":
            scalars["perf/peak_mem_bytes"] = float(torch.cuda.max_memory_allocated(env.device))
        state.scalars = scalars
        return scalars, state

    def _check_finite(self, out) -> None:
        """The NaN policy: a non-finite loss stops the run before its update (every rank, or the others would
        wait in the gradient all-reduce)."""
        values = [float(o.loss.detach()) for o in out.objectives]
        finite = all(math.isfinite(v) for v in values)
        if self.env.world > 1:
            finite = self.env.mean({"finite": float(finite)})["finite"] == 1.0
        if finite:
            return
        where, fix = out.explain()
        bad = next((v for v in values if not math.isfinite(v)), values[0])
        raise TrainingError(
            f"the loss became {bad} at step {self.step}{f' ({where})' if where else ''}; training stopped before the "
            f"bad update. The last usable checkpoint is {self.folder.latest() or 'none (none was written yet)'}; "
            f"{self.task.resume_hint} after lowering {fix}.")

    def _evaluate(self) -> dict | None:
        metrics = self.task.evaluate(self.step)
        if metrics is not None:
            self.emit("on_eval", self.step, metrics)
        return metrics

    def _end(self, interrupted: bool, signalled: bool) -> dict:
        task = self.task
        cad = task.cadence
        metrics = None
        # The final student or model, when the last step was not validated and the run ended on its own: at its
        # planned step or at its time budget (a teacher's --max-minutes: the exported step, so the learning
        # curve must reach it), not on a signal or --stop-at.
        ended = not signalled and task.done(self.step, self.wall)
        if ended and not (cad.eval_every and self.step % cad.eval_every == 0):
            metrics = self._evaluate()
        self._checkpoint()
        final = task.final(self.step, self.wall, metrics, signalled)
        if self.store:
            if interrupted:
                self.store.log_event(self.step, "interrupted", {"last_checkpoint": self.folder.latest()})
            self.store.finish("interrupted" if interrupted else "finished", final=final)
        final = self.env.broadcast(final)  # every rank returns rank 0's view of the run
        self.emit("on_end", final)
        return final

    # -- the run store and callbacks ----------------------------------------------------------------
    def _open_store(self, resume: bool) -> bool:
        """Open (or, for a new run, create) the store on rank 0; True when it was created now."""
        if not self.env.main:
            return False
        config = json.loads(json.dumps(self.task.config()))
        created = not is_run(self.out)
        if created:
            self.store = RunStore.create(self.out, config, kind=self.task.kind)
        else:
            self.store = RunStore.resume(self.out)
            changed = changed_keys(self.store.config(), config)
            if changed:  # e.g. longer phases for a resumed run; recorded so the history stays honest
                self.store.log_event(self.store.last_step() or 0, "config_changed", {"keys": changed})
        self.callbacks.insert(0, RunStoreLogger(self.store, self.task.phase_index))
        return created

    def emit(self, event: str, *args) -> None:
        for cb in self.callbacks:
            getattr(cb, event)(*args)

    def warn(self, text: str) -> None:
        log.warning("%s", text)
        self.ctx.warnings.append(text)
        # Once per run: a resumed run meets the same conditions again (e.g. no LPIPS weights) in its setup.
        if self.store and text not in {e.get("message") for e in self.store.events("warning")}:
            self.store.log_event(self.step, "warning", {"message": text})

    def _resume_failed(self, exc: BaseException) -> None:
        """A resume that failed in its setup changed nothing the run had: its status (e.g. finished) stays."""
        text = f"{type(exc).__name__}: {exc}"
        self.store.log_event(self.store.last_step() or 0, "resume_failed", {"message": text})
        previous = self.store.previous_status
        self.store.finish(previous if previous in ("finished", "failed") else "interrupted")

    def _fail(self, exc: BaseException) -> None:
        fail(self.store, self.step, self.out, exc, last_checkpoint=self.folder.latest())

    # -- checkpoints --------------------------------------------------------------------------------
    def _checkpoint(self) -> None:
        """Write the one state object (the task's tensors and state, the loop's step, time and RNG), list it in
        the store, keep the newest ``keep_checkpoints`` (and the best)."""
        task, env = self.task, self.env
        generators = env.gather(task.rank_state())
        self.last_ckpt = time.time()
        if not env.main:
            env.barrier()
            return
        tensors, state, meta = task.state_dict()
        cuda = env.device.type == "cuda"
        state = {**state, "step": self.step, "wall_s": self.wall, "torch_rng": torch.get_rng_state(),
                 "cuda_rng": torch.cuda.get_rng_state(env.device) if cuda else None, "data_rng": generators}
        path = self.folder.write(self.step, tensors, state, {"step": self.step, **meta})
        best = task.best_record()
        is_best = best is not None and best[2] == self.step
        self.store.add_checkpoint(self.step, path, best and best[0], best[1] if is_best else None, is_best=is_best)
        kept = self.store.best_checkpoint()
        self.folder.prune(task.cadence.keep_checkpoints, self.store.resolve(kept.path).resolve() if kept else None,
                          forget=self.store.remove_checkpoint)
        task.checkpointed(self.step, self.wall)
        self.emit("on_checkpoint", self.step, str(path), is_best)
        env.barrier()

    def _restore(self) -> Path | None:
        """Restore the newest checkpoint that can be read (rank 0 chooses, every rank loads that one); None when
        the run stopped before its first."""
        task, env = self.task, self.env
        picked = None
        if env.main:
            picked = self.folder.pick(env.device, on_unreadable=lambda *a: log_set_aside(self.store, *a)) \
                or task.legacy_checkpoint()
        path = env.broadcast(str(picked[0]) if picked else None)
        if path is None:
            unreadable = sorted(self.folder.dir.glob(UNREADABLE_PREFIX + "*"))
            if unreadable:
                # Its checkpoints exist but none can be read: starting over from step 0 would silently throw away
                # the run's training, so it is the user's call, not the resume's.
                raise CheckpointError(
                    f"no checkpoint of {self.out} can be read ({len(unreadable)} set aside as "
                    f"{', '.join(p.name for p in unreadable)}); a resume would start over from step 0. Restore a "
                    f"checkpoint, or {task.restart_hint}")
            # Stopped before its first checkpoint: nothing to restore, so the run starts over in place (refusing
            # would leave a folder that can be neither resumed nor started again).
            if self.store:
                self.store.truncate_after(-1)  # what the stopped attempt logged is re-logged from step 0
            self.warn(f"{self.out} has no complete checkpoint yet (the run stopped before its first one); "
                      f"starting it from step 0.")
            return None
        path = Path(path)
        if picked is None:
            picked = (path, *self.folder.read(path, env.device)) if path.parent == self.folder.dir \
                else task.legacy_checkpoint()
        tensors, state = picked[1], task.upgrade(picked[2])
        task.load_state_dict(tensors, state, path)
        self.step, self.wall = state["step"], float(state.get("wall_s", 0.0))
        generators = state["data_rng"]
        if len(generators) != env.world:
            raise ConfigError(f"{path} was written by a run with {len(generators)} processes; resume it with the same "
                              f"number (torchrun --nproc_per_node={len(generators)}).")
        task.load_rank_state(generators[env.rank])
        torch.set_rng_state(state["torch_rng"].cpu())
        if state.get("cuda_rng") is not None and env.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), env.device)
        if self.store:
            self.store.truncate_after(self.step)
            best = task.best_record() or (None, None, None)
            restore_checkpoint_records(self.store, path, self.step, best[2], best[1], best[0])
            self.store.log_event(self.step, "resumed", {"checkpoint": str(path)})
        log.info("resumed %s from %s (step %d)", self.out, path, self.step)
        return path


def fail(store, step: int, out: Path, exc: BaseException, last_checkpoint: str | None = None) -> None:
    """Record how a run ended on an exception: Ctrl-C (or a callback's KeyboardInterrupt) as ``interrupted``,
    anything else as ``failed`` with the error's text."""
    if store is None:
        return
    if isinstance(exc, KeyboardInterrupt):
        store.log_event(step, "interrupted", {"last_checkpoint": last_checkpoint})
        store.finish("interrupted")
        return
    text = f"{type(exc).__name__}: {exc}"
    try:
        store.log_event(step, "error", {"message": text})
        store.finish("failed", error=text)
    except Exception as store_exc:  # e.g. the disk that stopped the run is full: report the first error
        log.warning("could not record the failure in %s's run store (%s); resuming continues from the last "
                    "checkpoint", out, store_exc)
