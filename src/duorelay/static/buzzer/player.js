"use strict";
/*
 * duorelay demo: buzzer quiz, PLAYER page (phone).
 *
 * A WMBP client: a WebSocket to ws(s)://<host>/{CODE} that sends and receives plain
 * text frames; the server relays them to and from the host page (host.js). Only the
 * close codes come from the server itself:
 *   4404 no room with this code   4423 room full or started   4410 host closed the room
 *   1000 "kicked" by the host     4430 too slow to keep up     1001 server shutting down
 *
 * The quiz's messages (JSON text frames; see host.js):
 *   we send   {"type":"hello","name":"Ann"} on connect, {"type":"buzz"} on BUZZ
 *   we get    {"type":"welcome"|"open"|"result", "question":n, "open":bool,
 *              "first":"Ann"|null, "order":["Ann","Bob"], "name": our name (welcome)}
 * Anything else is ignored.
 *
 * Page options: ?code=ABCD prefills the room code.
 */

const $ = (id) => document.getElementById(id);
const NAME_KEY = "duorelay-buzzer-name";

let ws = null;
let code = "", wanted = "", myName = null;  // room, name typed, name the host gave us
let leaving = false;
let question = 0, buzzersOpen = false, order = [], buzzedIn = 0;

/* ---------- join form ---------- */

function cleanCode(text) {
  return text.toUpperCase().replace(/[^A-Z]/g, "").slice(0, 4);
}

function showForm(error = "") {
  $("game-panel").hidden = true;
  $("join-panel").hidden = false;
  $("join-error").textContent = error;
  const field = cleanCode($("code-input").value).length === 4 && error === "" ? "name-input" : "code-input";
  $(field).focus();
}

function showGame() {
  $("join-panel").hidden = true;
  $("game-panel").hidden = false;
  $("room-code").textContent = code;
  $("you").textContent = wanted;
  $("buzz-area").hidden = false;
  $("leave-btn").hidden = false;
  $("again-btn").hidden = true;
}

$("code-input").addEventListener("input", () => {
  const input = $("code-input"), clean = cleanCode(input.value);
  if (input.value !== clean) input.value = clean;
});

$("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const typedCode = cleanCode($("code-input").value);
  const typedName = $("name-input").value.replace(/\s+/g, " ").trim();
  if (typedCode.length !== 4) {
    $("join-error").textContent = "The room code is 4 letters, as shown on the host's screen.";
    $("code-input").focus();
    return;
  }
  if (!typedName) {
    $("join-error").textContent = "Please type your name.";
    $("name-input").focus();
    return;
  }
  code = typedCode;
  wanted = typedName;
  try { localStorage.setItem(NAME_KEY, wanted); } catch { /* private mode: fine */ }
  history.replaceState(null, "", `?code=${encodeURIComponent(code)}`);
  $("join-error").textContent = "";
  connect();
});

/* ---------- connection ---------- */

function connect() {
  myName = null;
  question = 0; buzzersOpen = false; order = []; buzzedIn = 0;
  leaving = false;
  showGame();
  setStatus("connecting", `Connecting to room ${code}…`);
  setBuzz(false);
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const sock = new WebSocket(`${scheme}//${location.host}/${encodeURIComponent(code)}`);
  ws = sock;
  sock.addEventListener("open", () => {
    setStatus("connecting", "Connected. Waiting for the host…");
    sock.send(JSON.stringify({ type: "hello", name: wanted }));
  });
  sock.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return;
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    if (msg && typeof msg === "object") handle(msg);
  });
  sock.addEventListener("close", (event) => {
    if (ws === sock) onClose(event);
  });
}

function handle(msg) {
  if (!["welcome", "open", "result"].includes(msg.type)) return;
  if (!Number.isInteger(msg.question) || typeof msg.open !== "boolean") return;
  if (!Array.isArray(msg.order) || !msg.order.every((n) => typeof n === "string")) return;
  if (msg.type === "welcome" && typeof msg.name === "string") {
    myName = msg.name;
    $("you").textContent = myName;
  }
  if (msg.question !== question) buzzedIn = 0;
  question = msg.question;
  buzzersOpen = msg.open;
  order = msg.order;
  render();
}

function render() {
  const place = myName === null ? -1 : order.indexOf(myName);
  if (place === 0) {
    setStatus("first", "You were first! Give your answer.");
    setBuzz(false, place);
  } else if (place > 0) {
    setStatus("later", `${order[0]} was first. You were number ${place + 1}.`);
    setBuzz(false, place);
  } else if (buzzersOpen && buzzedIn === question) {
    setStatus("buzzed", "Buzzed! Waiting for the host…");
    setBuzz(false);
  } else if (buzzersOpen) {
    const lead = order.length ? `${order[0]} buzzed first, but you can still buzz.` :
      `Question ${question}: buzz when you know the answer!`;
    setStatus("open", lead);
    setBuzz(true);
  } else if (myName !== null) {
    setStatus("waiting", "You're in! Wait for the host to open the first question.");
    setBuzz(false);
  }
}

const CLOSED = {
  4410: "The host closed the room. Thanks for playing!",
  4430: "Your connection was too slow to keep up, so the server disconnected you.",
  1001: "The server is shutting down. Try joining again in a moment.",
  4429: "The server is busy right now. Try joining again later.",
};

function onClose(event) {
  ws = null;
  setBuzz(false);
  if (leaving) return;
  if (event.code === 4404) {
    showForm(`There is no room with code ${code}. Check the code on the host's screen.`);
    return;
  }
  if (event.code === 4423) {
    showForm(`Room ${code} is full, or its quiz has already started.`);
    return;
  }
  let text = CLOSED[event.code];
  let final = event.code === 4410;        // the room is gone: joining it again is pointless
  if (event.code === 1000 && event.reason === "kicked") {
    text = "The host removed you from the quiz.";
    final = true;
  }
  text ??= `Connection lost (code ${event.code}). Check your network and join again.`;
  setStatus("ended", text);
  $("buzz-area").hidden = true;
  $("leave-btn").hidden = true;
  $("again-btn").hidden = false;
  $("again-btn").textContent = final ? "Join another quiz" : "Join again";
  $("again-btn").dataset.final = String(final);
}

function setStatus(state, text) {
  $("status").dataset.state = state;
  $("status").textContent = text;
}

/* ---------- the buzzer ---------- */

// place: our 0-based position in the buzz order, shown on the button ("1st", "2nd"...).
function setBuzz(enabled, place = -1) {
  const button = $("buzz");
  button.disabled = !enabled;
  button.textContent = place < 0 ? "BUZZ" : ordinal(place + 1);
  if (place < 0) delete button.dataset.place;
  else button.dataset.place = place === 0 ? "first" : "later";
  if (enabled && (document.activeElement === document.body || document.activeElement === null)) {
    button.focus();
  }
}

function ordinal(n) {
  const suffix = n % 100 >= 11 && n % 100 <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th";
  return `${n}${suffix}`;
}

function buzz() {
  if ($("buzz").disabled || !ws || ws.readyState !== WebSocket.OPEN) return;
  ws.send(JSON.stringify({ type: "buzz" }));
  buzzedIn = question;
  if (navigator.vibrate) navigator.vibrate(60);
  render();
}

$("buzz").addEventListener("click", buzz);

// Space or Enter anywhere on the game panel buzzes (a focused control keeps its own keys).
document.addEventListener("keydown", (event) => {
  if ($("game-panel").hidden || event.repeat || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.key !== " " && event.key !== "Enter") return;
  if (event.target instanceof Element && event.target.closest("button, input, a, textarea, select")) return;
  event.preventDefault();
  buzz();
});

$("leave-btn").addEventListener("click", () => {
  leaving = true;
  if (ws) ws.close(1000, "left");
  ws = null;
  showForm();
});

$("again-btn").addEventListener("click", () => {
  if ($("again-btn").dataset.final === "true") showForm();
  else connect();
});

/* ---------- start ---------- */

(() => {
  const params = new URLSearchParams(location.search);
  $("code-input").value = cleanCode(params.get("code") || "");
  try { $("name-input").value = localStorage.getItem(NAME_KEY) || ""; } catch { /* fine */ }
  showForm();
})();
