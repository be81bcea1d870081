// The API's documentation, from /openapi.json (no script from another site).
const paths = document.getElementById("paths");

function element(tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  return node;
}

function resolve(spec, schema) {
  const ref = schema && schema.$ref;
  if (!ref) return schema;
  return ref.split("/").slice(1).reduce((node, key) => node?.[key], spec) ?? schema;
}

function operation(spec, method, op) {
  const block = element("div");
  const title = element("h3");
  title.append(element("span", method.toUpperCase()));
  title.firstChild.className = "method";
  title.append(op.summary || op.operationId || "");
  block.append(title);
  if (op.description) block.append(element("p", op.description));
  if (op.security) block.append(element("p", "Needs Authorization: Bearer <token>."));
  for (const [type, body] of Object.entries(op.requestBody?.content ?? {})) {
    block.append(element("p", `Request (${type}):`));
    block.append(element("pre", JSON.stringify(resolve(spec, body.schema), null, 2)));
  }
  for (const [status, response] of Object.entries(op.responses ?? {})) {
    block.append(element("p", `${status}: ${response.description ?? ""}`));
    const schema = response.content?.["application/json"]?.schema;
    if (schema) block.append(element("pre", JSON.stringify(resolve(spec, schema), null, 2)));
  }
  return block;
}

async function load() {
  try {
    const response = await fetch("/openapi.json");
    const spec = await response.json();
    for (const [path, item] of Object.entries(spec.paths ?? {}).sort()) {
      const section = element("section");
      section.append(element("h2", path));
      for (const [method, op] of Object.entries(item)) section.append(operation(spec, method, op));
      paths.append(section);
    }
  } catch (error) {
    document.getElementById("docs-error").textContent = `The API document could not be loaded: ${error}`;
  }
}

load();
