// The cursor's controls: play/pause, speed, the scrubber and the cursor's time, with the keys
// (Space: play/pause, arrows: one bar). While playing, each animation frame advances the cursor
// by the wall-clock time since the last one. Scrubber moves are coalesced: the cursor takes the
// newest position once per animation frame, however many input events arrived.
import {
  advance,
  moveCursor,
  pause,
  play,
  setSpeed,
  SPEEDS,
  stepCursor,
  type PlaybackState,
} from "../../lib/playback";
import type { Store } from "../../lib/store";
import { formatTime } from "../../lib/time";
import { h } from "../../ui/dom";

export class Transport {
  readonly play = h("button", { type: "button", "data-testid": "play", text: "▶ Play" });
  readonly speed = h(
    "select",
    { name: "speed", "aria-label": "Speed" },
    ...SPEEDS.map(([value, label]) => h("option", { value: String(value), text: label })),
  );
  readonly scrubber = h("input", {
    type: "range",
    name: "cursor",
    "aria-label": "Time cursor",
    title: "Space: play/pause · ←/→: one bar",
    "data-testid": "scrubber",
  });
  readonly cursorTime = h("span", { class: "num", "data-testid": "cursor-time", text: "—" });
  private frame = 0; // the pending animation frame while playing
  private lastFrame: number | null = null; // its timestamp
  private scrubTo: number | null = null; // the scrubber's newest position, not applied yet
  private scrubFrame = 0; // the animation frame that applies it
  private readonly unsubscribe: () => void;
  private readonly onKey = (event: KeyboardEvent) => this.key(event);

  // `reveal` brings the cursor into view after the transport moved it.
  constructor(
    private readonly store: Store<PlaybackState>,
    private readonly reveal: () => void,
  ) {
    this.speed.value = String(store.state.speed);
    this.render(store.state, null);
    this.play.addEventListener("click", () =>
      store.update((s) => (s.playing ? pause(s) : play(s))),
    );
    this.speed.addEventListener("change", () =>
      store.update((s) => setSpeed(s, Number(this.speed.value))),
    );
    this.scrubber.addEventListener("input", () => this.scrub(Number(this.scrubber.value)));
    window.addEventListener("keydown", this.onKey);
    this.unsubscribe = store.subscribe((next, previous) => this.render(next, previous));
  }

  dispose(): void {
    this.unsubscribe();
    window.removeEventListener("keydown", this.onKey);
    cancelAnimationFrame(this.frame);
    cancelAnimationFrame(this.scrubFrame);
  }

  private scrub(time: number): void {
    const waiting = this.scrubTo !== null;
    this.scrubTo = time;
    if (waiting) return;
    this.scrubFrame = requestAnimationFrame(() => {
      const to = this.scrubTo;
      this.scrubTo = null;
      if (to !== null) this.move((s) => moveCursor(s, to));
    });
  }

  private move(transition: (state: PlaybackState) => PlaybackState): void {
    this.store.update(transition);
    this.reveal();
  }

  private key(event: KeyboardEvent): void {
    if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement)
      return;
    if (event.key === " ") {
      event.preventDefault();
      this.play.click();
    } else if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      if (this.store.state.cursor === null) return;
      event.preventDefault();
      this.move((s) => stepCursor(s, event.key === "ArrowRight" ? 1 : -1));
    }
  }

  private tick(now: number): void {
    const elapsed = this.lastFrame === null ? 0 : now - this.lastFrame;
    this.lastFrame = now;
    this.move((s) => advance(s, elapsed));
    if (this.store.state.playing) this.frame = requestAnimationFrame((t) => this.tick(t));
  }

  private render(state: PlaybackState, previous: PlaybackState | null): void {
    if (state.run !== previous?.run) {
      const run = state.run;
      this.scrubber.disabled = run === null;
      this.play.disabled = run === null;
      if (run !== null) {
        this.scrubber.min = String(run.start);
        this.scrubber.max = String(run.end);
        this.scrubber.step = String(run.sourceBucket);
      }
    }
    if (state.cursor !== previous?.cursor && state.cursor !== null) {
      const value = String(state.cursor);
      if (this.scrubber.value !== value) this.scrubber.value = value;
      const label = formatTime(state.cursor);
      if (this.cursorTime.textContent !== label) this.cursorTime.textContent = label;
    }
    if (state.playing !== (previous?.playing ?? false)) {
      this.play.textContent = state.playing ? "❚❚ Pause" : "▶ Play";
      this.play.setAttribute("aria-pressed", String(state.playing));
      cancelAnimationFrame(this.frame);
      this.lastFrame = null;
      if (state.playing) this.frame = requestAnimationFrame((t) => this.tick(t));
    }
  }
}
