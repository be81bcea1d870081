"use strict";
/*
 * duorelay demo: buzzer quiz, HOST page (big screen). Speaks WMBP as the host.
 *
 * WMBP (PROTOCOLS.md section 2), as used here:
 *  - WebSocket to ws(s)://<host>/CREATE. The server sends only CBOR maps in binary
 *    frames (decoded with cbor.js); we send the same maps as JSON text frames.
 *  - We send {"cmd":"prepare","max_players":N,"name":"Buzzer quiz"}; the server
 *    answers "state" then {"cmd":"prepare_reply","key":"ABCD"}: the room code.
 *  - Then: "player_joined"/"player_left" {player:id}, "state" {players:[ids],...},
 *    "from_str" {from:id, data:"text frame of that player"}, "error" {reason}.
 *  - We send {"cmd":"to_str","to":[ids] ([] = everyone),"data":"text"},
 *    {"cmd":"kick","player":id} and {"cmd":"stop"} (end: every player gets 4410).
 *
 * The quiz's own messages, JSON in the players' text frames:
 *  player -> host: {"type":"hello","name":"Ann"}   {"type":"buzz"}
 *  host -> player: {"type":"welcome","room","name", ...round}   (reply to hello)
 *                  {"type":"open", ...round}     (new question: buzzers enabled)
 *                  {"type":"result", ...round}   (after each buzz)
 *  where round = {"question":n, "open":bool, "first":"Ann"|null, "order":["Ann",...]}.
 * Each player may buzz once per question; anything malformed is ignored.
 *
 * Page options: ?max=N players (1-64, default 16).
 */

const $ = (id) => document.getElementById(id);
const ROOM_NAME = "Buzzer quiz";
const NAME_MAX = 24;                       // characters of a player's name
const FRAME_MAX = 2000;                    // longer player frames are ignored
const MAX_PLAYERS = (() => {
  const n = Number(new URLSearchParams(location.search).get("max"));
  return Number.isInteger(n) && n >= 1 && n <= 64 ? n : 16;
})();

const players = new Map();                 // id -> {id, name: string|null, li}
let ws = null, code = null, maxPlayers = MAX_PLAYERS, acceptConns = false;
let endedByHost = false, gone = false;
let question = 0, buzzersOpen = false;
let order = [];                            // [{id, name, at}] in buzz order

/* ---------- connection ---------- */

function connect() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${scheme}//${location.host}/CREATE`);
  ws.binaryType = "arraybuffer";
  ws.addEventListener("open", () => {
    setConn("connecting", "Connected. Creating the room…");
    send({ cmd: "prepare", max_players: MAX_PLAYERS, name: ROOM_NAME });
  });
  ws.addEventListener("message", (event) => {
    let msg;
    try {
      msg = typeof event.data === "string" ? JSON.parse(event.data) : CBOR.decode(event.data);
    } catch (err) {
      console.warn("buzzer host: undecodable frame from the server", err);
      return;
    }
    if (msg && typeof msg === "object" && typeof msg.cmd === "string") handle(msg);
  });
  ws.addEventListener("close", onClose);
}

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function sendTo(ids, message) {
  send({ cmd: "to_str", to: ids, data: JSON.stringify(message) });
}

function handle(msg) {
  switch (msg.cmd) {
    case "state":
      if (Array.isArray(msg.players)) syncPlayers(msg.players);
      if (Number.isInteger(msg.max_players) && msg.max_players > 0) maxPlayers = msg.max_players;
      acceptConns = msg.accept_conns === true;
      renderPlayers();
      break;
    case "prepare_reply":
      if (typeof msg.key === "string" && code === null) roomReady(msg.key);
      break;
    case "player_joined":
      if (Number.isInteger(msg.player)) addPlayer(msg.player);
      renderPlayers();
      break;
    case "player_left":
      if (Number.isInteger(msg.player)) removePlayer(msg.player);
      renderPlayers();
      break;
    case "from_str":
      if (Number.isInteger(msg.from) && typeof msg.data === "string") fromPlayer(msg.from, msg.data);
      break;
    case "error":
      setConn("error", `The server refused a message: ${msg.reason}`);
      break;
    default:
      break;                               // "from" (binary frames) and anything new: ignored
  }
}

function roomReady(key) {
  code = key;
  const url = `${location.origin}/static/buzzer/player.html?code=${encodeURIComponent(key)}`;
  $("code").textContent = key;
  $("code").setAttribute("aria-label", `Room code: ${key.split("").join(" ")}`);
  $("join-url").href = url;
  $("join-url").textContent = url;
  $("copy-btn").disabled = false;
  $("new-question").disabled = false;
  $("end-btn").disabled = false;
  document.title = `${key} · Host a buzzer quiz`;
  setConn("online", `Connected. Players join with code ${key}.`);
}

function onClose(event) {
  gone = true;
  let text;
  if (endedByHost) text = "The quiz has ended and the room is closed.";
  else if (event.code === 1001) text = "The server is shutting down: the room is closed.";
  else if (event.code === 4429) text = "The server cannot open a room right now. Try again later.";
  else if (event.code === 4430) text = "This page could not keep up with the server: the room was closed.";
  else text = `Lost the connection to the server (code ${event.code}): the room is closed.`;
  setConn("offline", text);
  $("code").classList.add("gone");
  for (const id of ["new-question", "copy-btn"]) $(id).disabled = true;
  for (const button of document.querySelectorAll("#players .kick")) button.hidden = true;
  $("end-btn").hidden = true;
  $("restart-btn").hidden = false;
  renderPlayers();
  buzzersOpen = false;
  renderRound();
}

function setConn(state, text) {
  const el = $("conn");
  el.dataset.state = state;
  el.textContent = text;
}

/* ---------- players ---------- */

function syncPlayers(ids) {
  const live = new Set(ids.filter(Number.isInteger));
  for (const id of live) addPlayer(id);
  for (const id of [...players.keys()]) if (!live.has(id)) removePlayer(id);
}

function addPlayer(id) {
  if (players.has(id)) return;
  const li = document.createElement("li");
  li.dataset.player = String(id);
  const name = document.createElement("span");
  name.className = "name";
  const kick = document.createElement("button");
  kick.type = "button";
  kick.className = "kick";
  kick.textContent = "Kick";
  kick.hidden = gone;
  kick.addEventListener("click", () => {
    kick.disabled = true;
    send({ cmd: "kick", player: id });
  });
  li.append(name, kick);
  const player = { id, name: null, li };
  players.set(id, player);
  showName(player);
  $("players").append(li);
}

function showName(player) {
  const label = player.name ?? `Player ${player.id}`;
  const span = player.li.querySelector(".name");
  span.textContent = player.name ?? `${label} (joining…)`;
  span.classList.toggle("pending", player.name === null);
  player.li.querySelector(".kick").setAttribute("aria-label", `Kick ${label}`);
}

function removePlayer(id) {
  const player = players.get(id);
  if (!player) return;
  player.li.remove();
  players.delete(id);
  if (order.some((b) => b.id === id)) renderOrder();
}

function renderPlayers() {
  const count = players.size;
  const full = code !== null && !acceptConns && !gone;
  const note = gone ? " · room closed" : full ? " · full" : "";
  $("player-count").textContent = `${count} / ${maxPlayers}${note}`;
  $("no-players").hidden = count > 0;
}

// No control or bidi-override characters, spaces collapsed, at most NAME_MAX characters.
function cleanName(raw) {
  if (typeof raw !== "string") return "";
  const text = raw.replace(/[\p{Cc}\u202a-\u202e\u2066-\u2069]/gu, "").replace(/\s+/g, " ").trim();
  return Array.from(text).slice(0, NAME_MAX).join("").trim();
}

// Two players may not share a name: "Ann", "Ann 2", "Ann 3", ...
function uniqueName(name, id) {
  const taken = new Set();
  for (const p of players.values()) if (p.id !== id && p.name) taken.add(p.name.toLowerCase());
  for (const b of order) if (b.id !== id) taken.add(b.name.toLowerCase());
  let candidate = name, n = 1;
  while (taken.has(candidate.toLowerCase())) candidate = `${name} ${++n}`;
  return candidate;
}

function fromPlayer(id, text) {
  const player = players.get(id);
  if (!player || text.length > FRAME_MAX) return;
  let msg;
  try {
    msg = JSON.parse(text);
  } catch {
    return;
  }
  if (!msg || typeof msg !== "object") return;
  if (msg.type === "hello") {
    if (player.name === null) {
      player.name = uniqueName(cleanName(msg.name) || `Player ${id}`, id);
      showName(player);
    }
    sendTo([id], { type: "welcome", room: ROOM_NAME, name: player.name, ...round() });
  } else if (msg.type === "buzz") {
    if (player.name === null || !buzzersOpen || order.some((b) => b.id === id)) return;
    order.push({ id, name: player.name, at: performance.now() });
    renderOrder();
    renderRound();
    sendTo([], { type: "result", ...round() });
  }
}

/* ---------- questions and buzzes ---------- */

function round() {
  const names = order.map((b) => b.name);
  return { question, open: buzzersOpen, first: names[0] ?? null, order: names };
}

function newQuestion() {
  if (gone || code === null) return;
  question += 1;
  buzzersOpen = true;
  order = [];
  renderOrder();
  renderRound();
  sendTo([], { type: "open", ...round() });
}

function renderRound() {
  let text;
  if (question === 0) text = "Press “New question” when you read out the first question.";
  else if (order.length === 0) text = `Question ${question}: buzzers are open. Waiting for the first buzz…`;
  else text = `Question ${question}: ${order[0].name} buzzed first!`;
  if (gone && question > 0) text = `Question ${question}: the room is closed.`;
  $("round").textContent = text;
  $("round").dataset.state = order.length ? "buzzed" : buzzersOpen ? "open" : "idle";
}

function renderOrder() {
  const ol = $("buzz-order");
  ol.replaceChildren();
  const start = order.length ? order[0].at : 0;
  order.forEach((buzz, i) => {
    const li = document.createElement("li");
    li.dataset.player = String(buzz.id);
    if (i === 0) li.classList.add("first");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = buzz.name;
    const note = document.createElement("span");
    note.className = "note";
    if (i === 0) note.textContent = "First!";
    else note.textContent = `+${((buzz.at - start) / 1000).toFixed(2)} s`;
    li.append(name, note);
    if (!players.has(buzz.id)) {
      li.classList.add("left");
      const left = document.createElement("span");
      left.className = "left-note";
      left.textContent = "(left)";
      name.after(left);
    }
    ol.append(li);
  });
}

/* ---------- buttons ---------- */

$("new-question").addEventListener("click", newQuestion);
$("end-btn").addEventListener("click", () => {
  endedByHost = true;
  send({ cmd: "stop" });
});
$("restart-btn").addEventListener("click", () => location.reload());
$("copy-btn").addEventListener("click", async () => {
  const url = $("join-url").href;
  try {
    await navigator.clipboard.writeText(url);
    $("copy-msg").textContent = "Link copied.";
  } catch {
    $("copy-msg").textContent = "Could not copy: select the link and copy it.";
  }
});

renderPlayers();
renderRound();
connect();
