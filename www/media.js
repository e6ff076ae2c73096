// Microphone and the one RTCPeerConnection to the SFU.
//
// Why this shape (docs/ARCHITECTURE.md, `www/`): each peer connection negotiates ONE
// sendrecv audio m-line, ONCE (at join, or with a new peer connection after a media reset);
// a listen-only member's is `recvonly`, with no mic at all (the server answers `sendonly`).
// Talking never renegotiates: the mic track is swapped into the sender with replaceTrack on
// press and swapped out (null: nothing sent) on release. The room's channel comes down the
// same m-line as one stream.

/** A microphone problem the page can explain to the user. */
export class MicError extends Error {
  /** @param {"denied"|"missing"|"busy"|"insecure"|"other"} kind */
  constructor(kind, message) {
    super(message);
    this.name = "MicError";
    this.kind = kind;
  }
}

/**
 * Ask for the microphone (once per visit). `raw` disables the browser's voice processing:
 * tests need it (echo cancellation fades a steady test tone by ~20 dB in 3 s); real use
 * keeps it on because phones are used on speaker.
 */
export async function openMic(raw) {
  if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
    throw new MicError(
      "insecure",
      "This page cannot use the microphone over plain HTTP. Open it with https:// (or on localhost).",
    );
  }
  const processing = !raw;
  const audio = {
    echoCancellation: processing,
    noiseSuppression: processing,
    autoGainControl: processing,
    channelCount: 1,
  };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video: false });
  } catch (err) {
    const name = err && err.name;
    if (name === "NotAllowedError" || name === "SecurityError") {
      throw new MicError(
        "denied",
        "Microphone access was denied. Allow the microphone for this site in the browser's " +
          "settings (the icon next to the address), then try again.",
      );
    }
    if (name === "NotFoundError" || name === "OverconstrainedError") {
      throw new MicError("missing", "No microphone was found. Connect one and try again.");
    }
    if (name === "NotReadableError" || name === "AbortError") {
      throw new MicError(
        "busy",
        "The microphone is in use by another app or could not be started. Close the other app and try again.",
      );
    }
    throw new MicError("other", `Could not open the microphone: ${(err && err.message) || err}`);
  }
}

/** Wait until ICE gathering is complete, or `ms` passed (the ICE-lite server needs none of ours). */
function gatheringDone(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(finish, ms);
    function finish() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") finish();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

/** One peer connection to the SFU for one signaling session. */
export class MediaLink {
  /**
   * @param {MediaStream|null} micStream null: listen only (a `recvonly` m-line, nothing to send)
   * @param {RTCIceServer[]} iceServers from the `joined` message
   * @param {{onRemoteStream?: (s: MediaStream) => void,
   *          onState?: (state: RTCPeerConnectionState) => void,
   *          onNoPath?: (detail: string) => void}} handlers
   * @param {string} policy `joined.ice_transport_policy`: "relay" = only through TURN
   */
  constructor(micStream, iceServers, handlers = {}, policy = "all") {
    this.micStream = micStream;
    this.micTrack = micStream ? micStream.getAudioTracks()[0] : null;
    this.handlers = handlers;
    this.remoteStream = null;
    this.sending = false;
    this.closed = false;
    this.relayOnly = policy === "relay";
    this.candidates = 0;
    this.iceErrors = [];
    this.pc = new RTCPeerConnection({
      iceServers: Array.isArray(iceServers) ? iceServers : [],
      iceTransportPolicy: this.relayOnly ? "relay" : "all",
      bundlePolicy: "max-bundle",
      rtcpMuxPolicy: "require",
    });
    // With no local candidate there is no path at all, and ICE would only give up much
    // later (if ever). That is what a refused TURN credential looks like when the server
    // forces relay: say so at once, with the TURN server's own error.
    this.pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) this.candidates += 1;
    };
    this.pc.onicecandidateerror = (ev) => {
      if (this.iceErrors.length < 4 && ev.url) {
        const text = String(ev.errorText || "").replace(/\.$/, "");
        this.iceErrors.push(`${ev.errorCode} ${text} from ${ev.url}`.replace(/\s+/g, " "));
      }
    };
    this.pc.onicegatheringstatechange = () => {
      if (this.closed || this.pc.iceGatheringState !== "complete" || this.candidates > 0) return;
      this.handlers.onNoPath?.(this.iceErrors.join("; "));
    };
    this.pc.ontrack = (ev) => {
      this.remoteStream = ev.streams && ev.streams[0] ? ev.streams[0] : new MediaStream([ev.track]);
      this.handlers.onRemoteStream?.(this.remoteStream);
    };
    this.pc.onconnectionstatechange = () => {
      if (!this.closed) this.handlers.onState?.(this.pc.connectionState);
    };
    this.transceiver = micStream
      ? this.pc.addTransceiver(this.micTrack, { direction: "sendrecv", streams: [micStream] })
      : this.pc.addTransceiver("audio", { direction: "recvonly" });
    this.sender = this.transceiver.sender;
    // Negotiated with the mic, but nothing goes out until the first press.
    this._switch = this.sender.replaceTrack(null);
  }

  /** Create the offer and return its SDP once gathering is done (or after a short wait). */
  async createOffer() {
    await this._switch;
    const offer = await this.pc.createOffer();
    await this.pc.setLocalDescription(offer);
    await gatheringDone(this.pc, 1500);
    return this.pc.localDescription.sdp;
  }

  async acceptAnswer(sdp) {
    await this.pc.setRemoteDescription({ type: "answer", sdp });
  }

  /**
   * Start / stop sending the mic. Never awaited on the press path: replaceTrack with a track
   * of the same kind needs no renegotiation and takes effect within a frame. Calls are
   * chained so a quick press-release-press lands in order.
   */
  setSending(on) {
    if (this.closed || on === this.sending || !this.micTrack) return;
    this.sending = on;
    const track = on ? this.micTrack : null;
    this._switch = this._switch
      .catch(() => {})
      .then(() => (this.closed ? undefined : this.sender.replaceTrack(track)))
      .catch((err) => console.warn("replaceTrack failed", err));
  }

  /** Remote level 0..1 from the RTP audio-level extension (RFC 6464), or -1 if unknown. */
  remoteLevel() {
    const receiver = this.transceiver.receiver;
    let level = -1;
    const mono = performance.now();
    const wall = performance.timeOrigin + mono;
    const read = (list) => {
      for (const s of list) {
        // Entries linger for 10 s after the last packet: only trust fresh ones. The spec's
        // timestamp is wall-clock based; older builds used the monotonic clock.
        const age = (s.timestamp > 1e11 ? wall : mono) - s.timestamp;
        if (typeof s.audioLevel === "number" && age < 500) {
          level = Math.max(level, s.audioLevel);
        }
      }
    };
    try {
      read(receiver.getContributingSources());
      read(receiver.getSynchronizationSources());
    } catch {
      return -1;
    }
    return level;
  }

  /**
   * Small summary of getStats() for the test hook and the debug line. `localCandidateType`
   * is the selected pair's local candidate type ("host", "srflx", "relay"; "" before one is
   * selected): "relay" proves the media goes through TURN.
   */
  async stats() {
    const out = { packetsReceived: 0, packetsSent: 0, audioLevel: 0, totalAudioEnergy: 0, localCandidateType: "" };
    const report = await this.pc.getStats();
    report.forEach((s) => {
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const pair = report.get(s.selectedCandidatePairId);
        const local = pair && report.get(pair.localCandidateId);
        if (local) out.localCandidateType = local.candidateType || "";
      } else if (s.type === "inbound-rtp" && s.kind === "audio") {
        out.packetsReceived += s.packetsReceived || 0;
        out.audioLevel = Math.max(out.audioLevel, s.audioLevel || 0);
        out.totalAudioEnergy += s.totalAudioEnergy || 0;
      } else if (s.type === "outbound-rtp" && s.kind === "audio") {
        out.packetsSent += s.packetsSent || 0;
      }
    });
    return out;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    this.pc.ontrack = null;
    this.pc.onconnectionstatechange = null;
    this.pc.onicegatheringstatechange = null;
    try {
      this.pc.close();
    } catch {
      /* ignore */
    }
  }
}
