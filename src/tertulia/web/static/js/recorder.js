/** Voice notes recorded in the browser (MediaRecorder), sent as type "V". */

export class VoiceRecorder {
  /** Whether recording is possible: browsers give the microphone only to secure pages
   * (https, localhost). */
  static supported() {
    return Boolean(navigator.mediaDevices?.getUserMedia) && typeof MediaRecorder !== "undefined";
  }

  /** Ask for the microphone and start; rejects when refused. */
  async start() {
    this.stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    this.chunks = [];
    this.recorder = new MediaRecorder(this.stream);
    this.recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size) this.chunks.push(event.data);
    });
    this.recorder.start();
    this.startedAt = performance.now();
  }

  /** Seconds since the start. */
  get elapsed() {
    return this.startedAt ? (performance.now() - this.startedAt) / 1000 : 0;
  }

  /** Stop and return the recording. */
  stop() {
    return new Promise((resolve) => {
      this.recorder.addEventListener(
        "stop",
        () => {
          this.#release();
          resolve(new Blob(this.chunks, { type: this.recorder.mimeType || "audio/webm" }));
        },
        { once: true },
      );
      this.recorder.stop();
    });
  }

  /** Stop and throw the recording away. */
  cancel() {
    if (this.recorder && this.recorder.state !== "inactive") this.recorder.stop();
    this.#release();
  }

  #release() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
  }
}
