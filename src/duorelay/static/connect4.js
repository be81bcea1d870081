"use strict";
/*
 * duorelay demo: Connect Four for two players over the Kamon relay protocol.
 *
 * Protocol, as spoken by this page:
 *  1. Open a WebSocket to ws(s)://<host>/ws  (or /ws/NAME when the page has ?ns=NAME).
 *  2. On open, send "* ROOM_SEAT" (join; the server splits on the LAST "_"), then "*".
 *  3. The relay forwards every frame unchanged to the other seat of the room. Frames sent
 *     while the other seat is empty are dropped, and nobody is told about joins/leaves.
 *  4. A received frame starting with "*" means "send me your state": we answer with our
 *     whole state as JSON. Any other frame is the peer's whole state as JSON.
 *  5. After every local move (or "New game") we send our whole state as JSON.
 *  Receiving any frame at all tells us that the opponent is present.
 *
 * State: { game:"connect4", version, moves, turn, winner, line, board }
 *  board[c][r]: c = 0..6 left to right, r = 0..5 bottom to top;
 *               0 = empty, 1 = Red (seat 0), 2 = Yellow (seat 1).
 *  moves:   discs played in the current game. Red always starts, so turn = moves % 2.
 *  version: number of "New game" resets in this room. A reset sets version+1, moves 0.
 *  winner:  null | 0 | 1 | "draw";  line: winning cells [[c,r],...] or null.
 *
 * Adopt rule: a received state is adopted when (version, moves) >= ours, compared
 * lexicographically. So a reset beats any position of an older game, and within one game
 * the state with more moves wins. If the received state is strictly older than ours we
 * answer with ours, so a peer that lost its game (e.g. fresh tab) catches up.
 * winner/line/turn are always recomputed locally from the board, never trusted.
 */

const COLS = 7, ROWS = 6;
const NAMES = ["Red", "Yellow"];
const $ = (id) => document.getElementById(id);

const params = new URLSearchParams(location.search);
const ns = params.get("ns") || "";          // optional relay namespace

let room = null, seat = null;               // set when a game is started
let state = emptyState(0);
let sock = null;                            // current WebSocket (null when none)
let connected = false, peerPresent = false;
let connText = "Connecting…";               // short text for #conn
let connMsg = "";                           // longer message shown in #status while offline
let retryDelay = 500, retryTimer = null, openedAt = 0;
const cells = [], colButtons = [];          // cells[c][r], colButtons[c]

/* ---------- game logic ---------- */

function emptyState(version) {
  return { game: "connect4", version, moves: 0, turn: 0, winner: null, line: null,
           board: Array.from({ length: COLS }, () => Array(ROWS).fill(0)) };
}

// All cells that belong to a run of 4+ equal discs (any of the 4 directions), or null.
function findWin(board) {
  const dirs = [[1, 0], [0, 1], [1, 1], [1, -1]];
  const found = new Map();
  let player = null;
  for (let c = 0; c < COLS; c++) {
    for (let r = 0; r < ROWS; r++) {
      const p = board[c][r];
      if (!p) continue;
      for (const [dc, dr] of dirs) {
        const run = [[c, r]];
        let cc = c + dc, rr = r + dr;
        while (cc >= 0 && cc < COLS && rr >= 0 && rr < ROWS && board[cc][rr] === p) {
          run.push([cc, rr]); cc += dc; rr += dr;
        }
        if (run.length >= 4) {
          player = p - 1;
          for (const cell of run) found.set(cell.join(","), cell);
        }
      }
    }
  }
  return player === null ? null : { player, line: [...found.values()] };
}

// Fill in turn/winner/line from board + moves.
function withOutcome(s) {
  const win = findWin(s.board);
  s.turn = s.moves % 2;
  s.winner = win ? win.player : (s.moves === COLS * ROWS ? "draw" : null);
  s.line = win ? win.line : null;
  return s;
}

// Parse and validate a received frame; returns a clean state or null. Never throws.
function parseState(text) {
  let s;
  try { s = JSON.parse(text); } catch { return null; }
  if (!s || typeof s !== "object" || s.game !== "connect4") return null;
  const int = (v, max) => Number.isInteger(v) && v >= 0 && v <= max;
  if (!int(s.version, 1e9) || !int(s.moves, COLS * ROWS)) return null;
  if (!Array.isArray(s.board) || s.board.length !== COLS) return null;
  const count = [0, 0], board = [];
  for (const col of s.board) {
    if (!Array.isArray(col) || col.length !== ROWS) return null;
    let gap = false;
    for (const v of col) {
      if (v !== 0 && v !== 1 && v !== 2) return null;
      if (v === 0) gap = true;
      else if (gap) return null;            // a floating disc: not a legal board
      else count[v - 1]++;
    }
    board.push(col.slice());
  }
  // Red moves first, so Red has as many discs as Yellow, or exactly one more.
  if (count[0] + count[1] !== s.moves || count[0] - count[1] !== s.moves % 2) return null;
  return withOutcome({ game: "connect4", version: s.version, moves: s.moves, board });
}

const notOlder = (a, b) => (a.version !== b.version ? a.version > b.version : a.moves >= b.moves);

function canMove() {
  return connected && peerPresent && state.winner === null && state.turn === seat;
}

function setState(s) {
  const prev = state.board;
  state = s;
  try { sessionStorage.setItem(storageKey(), JSON.stringify(state)); } catch { /* ignore */ }
  render(prev);
}

function play(c) {
  if (!canMove()) return;
  const r = state.board[c].indexOf(0);      // lowest free row
  if (r < 0) return;                        // column full
  const board = state.board.map((col) => col.slice());
  board[c][r] = seat + 1;
  setState(withOutcome({ game: "connect4", version: state.version, moves: state.moves + 1, board }));
  sendState();                              // protocol step 5
}

function newGame() {
  if (state.winner === null) return;
  setState(emptyState(state.version + 1));  // higher version: the peer adopts it
  sendState();
  colButtons[3].focus();
}

/* ---------- networking ---------- */

function wsUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${location.host}/ws${ns ? "/" + encodeURIComponent(ns) : ""}`;
}

function sendState() {
  if (!sock || sock.readyState !== WebSocket.OPEN) return;
  const { game, version, moves, turn, winner, line, board } = state;
  sock.send(JSON.stringify({ game, version, moves, turn, winner, line, board }));
}

function connect() {
  clearTimeout(retryTimer);
  retryTimer = null;
  openedAt = 0;
  if (!connMsg) connMsg = "Connecting…";
  connText = retryDelay > 500 ? "Reconnecting…" : "Connecting…";
  render();
  let ws;
  try { ws = new WebSocket(wsUrl()); } catch { scheduleRetry("Could not open a connection."); return; }
  sock = ws;
  ws.onopen = () => {
    if (sock !== ws) return;
    connected = true; peerPresent = false; openedAt = Date.now();
    connText = "Connected"; connMsg = "";
    ws.send(`* ${room}_${seat}`);           // step 2a: join ROOM as SEAT
    ws.send("*");                           // step 2b: ask the peer (if present) for its state
    render();
  };
  ws.onmessage = (e) => { if (sock === ws) onFrame(e.data); };
  ws.onclose = (e) => { if (sock === ws) onClose(e); };
}

function onFrame(data) {
  peerPresent = true;                       // any frame comes from the opponent
  if (typeof data === "string") {
    if (data.startsWith("*")) {
      sendState();                          // step 4: peer asks for our state
    } else {
      const s = parseState(data);
      if (s && notOlder(s, state)) setState(s);
      else if (s) sendState();              // peer is behind: bring it up to date
    }
  }
  render();
}

function onClose(e) {
  sock = null; connected = false; peerPresent = false;
  if (openedAt && Date.now() - openedAt > 3000) retryDelay = 500;  // it was a healthy connection
  const reason = e.reason ? `: ${e.reason}` : ".";
  let fatal = null, msg = "";
  switch (e.code) {
    case 4409: fatal = `That seat is already taken in this room: someone else is playing ${NAMES[seat]}. ` +
                       "Pick another room or the other seat."; break;
    case 4400: fatal = `The server rejected the join${reason}`; break;
    case 4403: fatal = `This page's origin is not allowed by the server${reason}`; break;
    case 4408: msg = "The server timed out waiting for the join."; break;
    case 1009: msg = "A message was too big for the server."; break;
    case 1001: msg = "The server is shutting down."; break;
    case 4429: msg = "The server is busy (too many connections)."; break;
  }
  if (fatal) {                              // no point in retrying these
    connText = "Disconnected"; connMsg = fatal;
    $("leave-btn").textContent = "Choose another room";
    showGame(false);                        // we are not in this game: no board, no invite link
    render();
  } else {
    if (e.reason) msg = `${msg || "The server closed the connection."} (${e.reason})`;
    scheduleRetry(msg);
  }
}

function scheduleRetry(msg) {
  connText = "Reconnecting…";
  connMsg = (msg ? msg + " " : "") + "Connection lost — reconnecting…";
  clearTimeout(retryTimer);
  retryTimer = setTimeout(connect, retryDelay);
  retryDelay = Math.min(retryDelay * 2, 5000);
  render();
}

window.addEventListener("online", () => {
  if (retryTimer) { retryDelay = 500; connect(); }
});

/* ---------- rendering ---------- */

function statusText() {
  if (!connected) return connMsg;
  if (state.winner === "draw") return "Draw — the board is full.";
  if (state.winner === seat) return "You win!";
  if (state.winner !== null) return `${NAMES[state.winner]} wins — you lose.`;
  if (!peerPresent) return "Waiting for the other player to join…";
  return state.turn === seat ? "Your turn" : "Their turn";
}

function render(prevBoard) {
  if (room === null) return;
  const win = new Set((state.line || []).map((p) => p.join(",")));
  const movable = canMove();
  for (let c = 0; c < COLS; c++) {
    const discs = [];
    for (let r = 0; r < ROWS; r++) {
      const v = state.board[c][r], cell = cells[c][r];
      if (v) { cell.dataset.player = String(v - 1); discs.push(NAMES[v - 1]); }
      else delete cell.dataset.player;
      cell.classList.toggle("win", win.has(`${c},${r}`));
      if (prevBoard && v && !prevBoard[c][r]) {       // newly dropped disc: animate
        cell.style.setProperty("--fall", String(ROWS - r));
        cell.classList.remove("drop");
        void cell.offsetWidth;                         // restart the CSS animation
        cell.classList.add("drop");
      }
    }
    const free = ROWS - discs.length, btn = colButtons[c];
    btn.setAttribute("aria-label", `Column ${c + 1}, ${free} free` +
      (discs.length ? `; from the bottom: ${discs.join(", ")}` : ""));
    btn.setAttribute("aria-disabled", String(!(movable && free > 0)));
  }
  const board = $("board");
  board.classList.toggle("playable", movable);
  board.classList.toggle("over", state.winner !== null);
  const status = $("status"), text = statusText();
  if (status.textContent !== text) status.textContent = text;   // avoid repeated announcements
  status.dataset.state = !connected ? "offline" : state.winner !== null ? "over" : movable ? "your-turn" : "wait";
  $("conn").textContent = connText;
  $("conn").dataset.state = connected ? "connected" : "offline";
  $("new-game-btn").hidden = state.winner === null;
}

function buildBoard() {
  const board = $("board");
  for (let c = 0; c < COLS; c++) {
    const btn = document.createElement("button");
    btn.type = "button";
    btn.className = "col";
    btn.dataset.col = String(c);
    cells[c] = [];
    for (let r = ROWS - 1; r >= 0; r--) {            // top row first in the DOM
      const cell = document.createElement("span");
      cell.className = "cell";
      cell.dataset.col = String(c);
      cell.dataset.row = String(r);
      cell.addEventListener("animationend", () => cell.classList.remove("drop"));
      cells[c][r] = cell;
      btn.appendChild(cell);
    }
    btn.addEventListener("click", () => play(c));
    colButtons[c] = btn;
    board.appendChild(btn);
  }
}

/* ---------- page flow ---------- */

function storageKey() { return `duorelay-c4|${ns}|${room}|${seat}`; }

function pageUrl(r, s) {
  const u = new URL(location.href);
  u.search = ""; u.hash = "";
  if (r !== null) { u.searchParams.set("room", r); u.searchParams.set("seat", String(s)); }
  if (ns) u.searchParams.set("ns", ns);
  return u.toString();
}

function roomError(name) {
  if (!name) return "Please type a room name.";
  if ([...name].length > 128) return "Room names can be at most 128 characters.";
  if (/[\u0000-\u001f\u007f-\u009f]/.test(name)) return "Room names cannot contain control characters.";
  return "";
}

function start(name, s) {
  const err = roomError(name);
  $("start-error").textContent = err;
  if (err) { $("room-input").focus(); return; }
  room = name; seat = s;
  let saved = null;                                   // survive a reload of this tab
  try { saved = parseState(sessionStorage.getItem(storageKey()) || ""); } catch { /* ignore */ }
  state = saved || emptyState(0);
  history.replaceState(null, "", pageUrl(room, seat)); // reload rejoins the same room/seat
  $("room-name").textContent = room;
  $("you").textContent = NAMES[seat];
  $("you").dataset.player = String(seat);
  $("invite-label").textContent = `Invite link for the other player (${NAMES[1 - seat]})`;
  $("invite-link").value = pageUrl(room, 1 - seat);
  $("copy-msg").textContent = "";
  $("leave-btn").textContent = "Leave room";
  showGame(true);
  $("start-panel").hidden = true;
  $("game-panel").hidden = false;
  document.title = `${room} — duorelay demo: Connect Four`;
  retryDelay = 500; connMsg = "";
  connect();
  colButtons[3].focus();
}

// Board, hint and invite link are shown while we hold (or try to hold) a seat; hidden after
// a fatal close (e.g. 4409), where only the message and "Choose another room" make sense.
function showGame(on) {
  for (const el of [$("board"), document.querySelector(".hint"), document.querySelector(".invite")]) {
    el.hidden = !on;
  }
}

function leave() {
  const ws = sock;
  sock = null; connected = false; peerPresent = false;
  clearTimeout(retryTimer); retryTimer = null;
  if (ws) ws.close(1000);
  $("room-input").value = room || "";
  room = null; seat = null;
  history.replaceState(null, "", pageUrl(null));
  document.title = "duorelay demo: Connect Four";
  $("game-panel").hidden = true;
  $("start-panel").hidden = false;
  $("room-input").focus();
}

async function copyInvite() {
  const input = $("invite-link");
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    input.select();
    try { document.execCommand("copy"); } catch { /* ignore */ }
  }
  $("copy-msg").textContent = "Link copied. Send it to the other player.";
}

function onKey(e) {
  if ($("game-panel").hidden || e.altKey || e.ctrlKey || e.metaKey) return;
  if (e.target instanceof HTMLInputElement) return;
  if (/^[1-7]$/.test(e.key)) {                        // keys 1..7 drop a disc
    const c = Number(e.key) - 1;
    colButtons[c].focus();
    play(c);
    e.preventDefault();
    return;
  }
  const i = colButtons.indexOf(e.target);
  if (i < 0) return;
  const next = { ArrowLeft: i - 1, ArrowRight: i + 1, Home: 0, End: COLS - 1 }[e.key];
  if (next === undefined) return;
  colButtons[(next + COLS) % COLS].focus();           // wrap around at the edges
  e.preventDefault();
}

function init() {
  buildBoard();
  $("start-form").addEventListener("submit", (e) => {  // Enter in the input = Create
    e.preventDefault();
    start($("room-input").value.trim(), 0);
  });
  $("join-btn").addEventListener("click", () => start($("room-input").value.trim(), 1));
  $("new-game-btn").addEventListener("click", newGame);
  $("leave-btn").addEventListener("click", leave);
  $("copy-btn").addEventListener("click", copyInvite);
  document.addEventListener("keydown", onKey);

  // ?room=NAME&seat=0|1 skips the start panel.
  const r = params.get("room"), s = params.get("seat");
  if (r !== null) $("room-input").value = r;
  if (r && (s === "0" || s === "1") && !roomError(r)) start(r, Number(s));
  else if (r && roomError(r)) $("start-error").textContent = roomError(r);
}

init();
