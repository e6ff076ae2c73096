// What the room page shows, derived from state: the session (connection, notice), the floor
// machine, the room and the latch switch go in; ui.js's renderers draw it.
//
// `describeTalk` and `describePrivacy` are the pure parts (the Talk button's state and texts;
// the lock and what the page says about who can listen; tests call them directly); `RoomView` draws a whole snapshot and keeps the two things that tick on their
// own: the level meter and, while we talk, the once-a-second countdown.

import { State } from "./ptt.js";
import { LevelMeter } from "./meter.js";
import { checkName, isGeneratedRoomName, rememberedName } from "./names.js";
import {
  els,
  fieldError,
  flashLabel,
  renderConn,
  renderMembers,
  renderMode,
  renderNotice,
  renderPrivacy,
  renderPtt,
  renderSelfStatus,
  renderTalker,
} from "./ui.js";

const REVOKE_TEXT = {
  max_talk_time: "Time is up: release, then press again to talk more.",
  lost: "You lost the floor.",
  // The server heard no audio from us for a few seconds (frozen tab, dead network, mic gone).
  no_media: "Your audio stopped reaching the room, so your turn ended. Check your connection and microphone, then press again.",
  // A member of higher priority took the floor (named by describeTalk when the server said who).
  preempted: "Your turn was taken by someone with priority. Press again when the channel is clear.",
};

function formatSeconds(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * The Talk button: `state` (the floor state, or "disabled" while talking is impossible), its
 * small second line `sub`, and the status line under it.
 * @param {{canTalk: boolean, connection: string, detail: string,
 *          floor: {state: string, position: number, reason: string, busyHolder: ?object,
 *                  revokedBy: string},
 *          latch: boolean, talker: ?{name: string}, talkDeadline: ?number, now: number,
 *          listenOnly: boolean}} s
 * `listenOnly` (a signed link that lets us listen only): state "listening", no Talk button.
 */
export function describeTalk(s) {
  const { floor, latch } = s;
  const state = s.canTalk ? (s.listenOnly ? "listening" : floor.state) : "disabled";
  const talkerName = s.talker ? s.talker.name : "";
  switch (state) {
    case "listening":
      return {
        state,
        sub: "Listen only",
        status: s.talker ? `${talkerName} is talking. You can listen only.` : "You can listen only. The channel is clear.",
      };
    case "disabled":
      return {
        state,
        sub: s.connection === "failed" ? "Not connected" : "Connecting…",
        status: s.detail || "Connecting…",
      };
    case State.REQUESTING:
      return { state, sub: "Requesting…", status: "Asking for the floor…" };
    case State.TALKING: {
      const status =
        s.talkDeadline === null ? "You are on air." : `You are on air · ${formatSeconds(s.talkDeadline - s.now)} left`;
      return { state, sub: latch ? "Tap to stop" : "Release to stop", status };
    }
    case State.QUEUED: {
      const n = floor.position;
      const status = latch
        ? `You are #${n} in line. You talk next when it's your turn.`
        : `You are #${n} in line${talkerName ? `, after ${talkerName}` : ""}. Keep holding to talk next.`;
      return { state, sub: `Queued #${n}`, status };
    }
    case State.BUSY: {
      const who = (floor.busyHolder && floor.busyHolder.name) || talkerName;
      let status = who ? `Busy: ${who} is talking.` : "Busy: someone else is talking.";
      if (floor.reason === "rate_limited") status = "Too many presses. Wait a moment.";
      return { state, sub: "Busy", status };
    }
    case State.REVOKED: {
      if (floor.reason === "preempted" && floor.revokedBy) {
        return { state, sub: "Pre-empted", status: `Pre-empted by ${floor.revokedBy}. Press again when the channel is clear.` };
      }
      return {
        state,
        sub: { no_media: "No audio", preempted: "Pre-empted" }[floor.reason] || "Stopped",
        status: REVOKE_TEXT[floor.reason] || `Your turn was ended (${floor.reason}).`,
      };
    }
    default:
      return {
        state,
        sub: latch ? "Tap to talk" : "Hold to talk",
        status: s.talker ? `${talkerName} is talking.` : "Ready. The channel is clear.",
      };
  }
}

/**
 * Who can listen, said plainly. `generated`: the room's name is one randomRoomName makes
 * (nobody guesses it) rather than one a person typed (anyone may guess it);
 * `passwordProtected`: joined.password_protected, or null before we are in.
 * Returns the lock (shown on protected rooms), `state` for CSS and tests, the join form's
 * note (before joining) and the invite card's note (once in).
 */
export function describePrivacy(generated, passwordProtected) {
  if (passwordProtected === null) {
    const joinNote = generated
      ? "Anyone who has this link can join. If you are the first one here, a password keeps the room to those who know it."
      : "This room name was typed, not generated: unless the room has a password, it is public, and anyone who guesses the name can join and listen. If you are the first one here, a password protects it.";
    return { lock: false, state: "unknown", joinNote, roomNote: "" };
  }
  if (passwordProtected) {
    return { lock: true, state: "protected", joinNote: "", roomNote: "Password protected: people need the link and the password." };
  }
  const roomNote = generated
    ? "No password: anyone who has the link can join and listen."
    : "No password, and the name was typed: this room is public. Anyone who guesses the name can join and listen.";
  return { lock: false, state: generated ? "link" : "public", joinNote: "", roomNote };
}

/** The room page's title (attention.js puts it back after a hidden tab's "● Ann is talking"). */
export function roomTitle(room) {
  return `#${room} · walkie`;
}

export class RoomView {
  /**
   * @param {() => number} level the level to meter (0..1, negative when unknown)
   * @param {() => void} tick called once a second while we talk (to redraw the countdown)
   */
  constructor(level, tick) {
    this.meter = new LevelMeter(els.meterBar);
    this.level = level;
    this.tick = tick;
    this._countdown = 0;
    this._notice = null;
    this._generated = false;
  }

  /** Room name and link, once. */
  showRoom(room, link) {
    document.title = roomTitle(room);
    els.roomName.textContent = room;
    els.roomFull.textContent = room;
    els.joinRoom.textContent = `#${room}`;
    els.roomLink.value = link;
    this._generated = isGeneratedRoomName(room);
  }

  /**
   * Draw everything. `session`: connection, detail, mode, notice, canTalk (session.js);
   * `floor`: the FloorMachine; `room`: the RoomState; `now`: the clock of talkDeadline.
   */
  render({ session, floor, room, latch, now }) {
    renderConn(session.connection);
    renderMode(session.mode);
    if (this._notice !== session.notice) {
      // Only on change: the notice is an alert, re-setting it would announce it again.
      this._notice = session.notice;
      renderNotice(session.notice.text, session.notice.retry);
    }
    const talk = describeTalk({
      canTalk: session.canTalk,
      connection: session.connection,
      detail: session.detail,
      floor,
      latch,
      talker: room.talker,
      talkDeadline: room.talkDeadline,
      now,
      listenOnly: room.listenOnly,
    });
    renderPtt(talk.state, talk.sub, latch);
    renderSelfStatus(talk.status);

    const youId = room.you ? room.you.id : null;
    const talkerId = room.talker ? room.talker.id : null;
    const who = room.talker ? (talkerId === youId ? { self: true } : { name: room.talker.name }) : null;
    renderTalker(session.canTalk || room.you ? who : null, room.queueLength);
    renderMembers([...room.members.values()], youId, talkerId);
    renderPrivacy(describePrivacy(this._generated, room.passwordProtected));
    const talking = floor.state === State.TALKING;
    this.meter.setSource(who || talking ? this.level : null);

    if (talking && !this._countdown) {
      this._countdown = setInterval(this.tick, 1000);
    } else if (!talking && this._countdown) {
      clearInterval(this._countdown);
      this._countdown = 0;
    }
  }

  /** Fill in and focus the join form (once, when it appears: never while the user types). */
  showJoinForm(name, nameError, passwordError) {
    renderMode("join"); // now, not at the next render: a hidden field cannot take the focus
    els.joinName.value = name || rememberedName();
    fieldError(els.joinNameError, nameError);
    fieldError(els.joinPwError, passwordError);
    if (passwordError) {
      els.joinPwBox.open = true;
      els.joinPassword.value = "";
      els.joinPassword.focus();
    } else if (!els.joinName.value || nameError) {
      els.joinName.focus();
    } else {
      els.joinSubmit.focus();
    }
  }

  /** The submitted join form: {name, password}, or null (and the error shown) if unusable. */
  readJoinForm() {
    const { name, error } = checkName(els.joinName.value);
    if (!name) {
      fieldError(els.joinNameError, `That name cannot be used: ${error}.`);
      els.joinName.focus();
      return null;
    }
    return { name, password: els.joinPassword.value };
  }

  /** "Copied" on the copy button for a moment. */
  copied() {
    flashLabel(els.copyLink, "Copied");
  }
}
