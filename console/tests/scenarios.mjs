// What a user does in the console, one function per scenario (see run.mjs). Each waits for
// what the user would see (a locator or a condition in the page), never for a fixed time.

import assert from "node:assert/strict";

async function signIn(page, base, token) {
  await page.goto(base + "/console/");
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
}

/** A wrong token is refused; the admin's lets in, to the overview, and signs out again. */
export async function sign_in(page, env) {
  await signIn(page, env.CONSOLE_URL, "tn_not_a_real_token");
  await page.getByRole("alert").filter({ hasText: "refused" }).waitFor();
  assert.equal(await page.getByRole("navigation").isVisible(), false, "no pages before signing in");
  await page.getByLabel("Token").fill(env.ADMIN_TOKEN);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.locator("tr[data-node]").first().waitFor();
  await page.getByRole("link", { name: "Tokens" }).waitFor();
}

/** Submit `upper` with a typed payload and see its result arrive. */
export async function submit_upper(page, env) {
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  await page.getByRole("link", { name: "Submit" }).click();
  await page.getByLabel("Kind").selectOption("upper");
  await page.getByLabel("Payload", { exact: true }).fill("hello from the console");
  await page.getByRole("button", { name: "Submit", exact: true }).click();
  await page.locator("[data-test=result]").getByText("HELLO FROM THE CONSOLE").waitFor();
  await page.locator("#outcome .badge", { hasText: "succeeded" }).waitFor();
}

/**
 * Drop a 20 MB file on `sha256`: the upload streams with a progress bar (the upload is
 * throttled so that its progress can be seen part way), and the digest is right.
 */
export async function drop_file(page, env) {
  const size = Number(env.FILE_BYTES);
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  await page.getByRole("link", { name: "Submit" }).click();
  await page.getByLabel("Kind").selectOption("sha256");
  // The file: byte i is i % 251, as the test computed its digest.
  const files = await page.evaluateHandle((size) => {
    const bytes = new Uint8Array(size);
    for (let i = 0; i < size; i++) bytes[i] = i % 251;
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], "twenty.bin", { type: "application/octet-stream" }));
    return dt;
  }, size);
  await page.locator(".drop").dispatchEvent("drop", { dataTransfer: files });
  await page.getByText("twenty.bin").waitFor();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  await cdp.send("Network.emulateNetworkConditions", {
    offline: false,
    latency: 0,
    downloadThroughput: -1,
    uploadThroughput: 8 * 1024 * 1024,
  });
  await page.getByRole("button", { name: "Submit", exact: true }).click();
  const bar = page.locator("#progress");
  await bar.waitFor();
  await page.waitForFunction(() => {
    const p = document.getElementById("progress");
    return p.value > 0 && p.value < p.max;
  });
  await page.waitForFunction((size) => {
    const p = document.getElementById("progress");
    return p.max === size && p.value === size;
  }, size);
  await page.locator("#outcome .badge", { hasText: "succeeded" }).waitFor({ timeout: 60000 });
  await page.locator("[data-test=result]").getByText(env.EXPECTED_SHA256).waitFor();
}

/** Find a task by its id and see its page. */
export async function find_task(page, env) {
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  await page.getByRole("link", { name: "Tasks" }).click();
  await page.getByLabel("Find by id").fill(env.TASK_ID);
  await page.getByRole("button", { name: "Open" }).click();
  await page.getByRole("heading", { name: `Task ${env.TASK_ID}` }).waitFor();
  const facts = page.locator("dl.facts");
  await facts.locator("[data-field=kind]", { hasText: "upper" }).waitFor();
  await facts.locator("[data-field=status]", { hasText: "succeeded" }).waitFor();
  await page.locator("[data-bytes=payload] pre", { hasText: "find me" }).waitFor();
  await page.locator("[data-bytes=result] pre", { hasText: "FIND ME" }).waitFor();
}

/** Retry a dead task from the dead letters (after confirming) and see it succeed. */
export async function retry_dead(page, env) {
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  await page.getByRole("link", { name: "Dead letters" }).click();
  const row = page.locator(`tr[data-id="${env.TASK_ID}"]`);
  await row.locator(".badge", { hasText: "dead" }).waitFor();
  await page.getByLabel("Select all").check();
  await page.getByRole("button", { name: "Retry 1 selected" }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Retry" }).click();
  await row.locator(".badge", { hasText: "succeeded" }).waitFor({ timeout: 60000 });
}

/** The overview's throughput moves while a bench runs (the test runs it). */
export async function overview_moves(page, env) {
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.waitForFunction(() => {
    const t = document.querySelector("[data-test=throughput]");
    return t && parseFloat(t.textContent) > 0;
  }, null, { timeout: 60000 });
  await page.waitForFunction(() => {
    const p = document.querySelector("[data-test=p50]");
    return p && p.textContent.endsWith("ms");
  });
}

/** A submit token sees its own tasks only, and no admin pages. */
export async function submit_token(page, env) {
  await signIn(page, env.CONSOLE_URL, env.APP_TOKEN);
  await page.getByRole("heading", { name: "Tasks" }).waitFor();
  await page.locator(`tr[data-id="${env.OWN_TASK}"]`).waitFor();
  assert.equal(await page.locator(`tr[data-id="${env.OTHER_TASK}"]`).count(), 0, "another owner's task is listed");
  assert.equal(await page.getByRole("link", { name: "Tokens" }).isVisible(), false, "a Tokens link");
  assert.equal(await page.getByRole("link", { name: "Overview" }).isVisible(), false, "an Overview link");
  // Going there by address lands on the tasks instead.
  await page.goto(env.CONSOLE_URL + "/console/#/tokens");
  await page.getByRole("heading", { name: "Tasks" }).waitFor();
  assert.equal(await page.getByRole("heading", { name: "Tokens" }).count(), 0);
  // Another owner's task by id is not found.
  await page.goto(env.CONSOLE_URL + "/console/#/task/" + env.OTHER_TASK);
  await page.getByRole("alert").filter({ hasText: "not_found" }).waitFor();
}

/**
 * Pause the `sleep` kind from the overview; a `sleep` submitted with a key waits, shown
 * paused; cancel it from its page; resume the kind from the overview.
 */
export async function pause_and_cancel(page, env) {
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByLabel("Lane or kind").selectOption("kind");
  await page.getByLabel("Name").fill("sleep");
  await page.getByRole("button", { name: "Pause", exact: true }).click();
  await page.locator("[data-test=paused] .badge", { hasText: "kind:sleep" }).waitFor();
  await page.getByRole("link", { name: "Submit" }).click();
  await page.getByLabel("Kind").selectOption("sleep");
  await page.getByLabel("Payload", { exact: true }).fill("60000");
  await page.getByLabel("Key").fill("console-key-1");
  await page.getByLabel("Priority").fill("7");
  await page.getByRole("button", { name: "Submit", exact: true }).click();
  await page.locator("[data-test=task-id]").click();
  await page.locator("[data-test=paused]").waitFor();
  await page.locator("dd[data-field=key]", { hasText: "console-key-1" }).waitFor();
  await page.locator("dd[data-field=priority]", { hasText: "7" }).waitFor();
  await page.getByRole("button", { name: "Cancel", exact: true }).click();
  await page.getByRole("dialog").getByRole("button", { name: "Cancel task" }).click();
  await page.locator("dd[data-field=status] .badge", { hasText: "cancelled" }).waitFor();
  assert.equal(await page.getByRole("button", { name: "Cancel", exact: true }).count(), 0, "an ended task cannot be cancelled");
  await page.getByRole("link", { name: "Overview" }).click();
  await page.locator("[data-test=paused] .badge", { hasText: "kind:sleep" }).waitFor();
  await page.getByRole("button", { name: "Resume" }).click();
  await page.locator("[data-test=paused]", { hasText: "Nothing is paused." }).waitFor();
}

/**
 * A worker of an external kind is connected and holds a task: the overview lists it (its
 * kind, slots and busy ones), and the task's page shows how far the worker got; when the
 * worker finishes, the page shows the result without a reload.
 */
export async function workers_and_progress(page, env) {
  await signIn(page, env.CONSOLE_URL, env.ADMIN_TOKEN);
  const worker = page.locator("[data-test=workers] tr[data-worker]", { hasText: env.KIND });
  await worker.waitFor();
  assert.equal(await worker.locator("[data-field=slots]").textContent(), "3");
  assert.equal(await worker.locator("[data-field=busy]").textContent(), "1");
  await page.getByRole("link", { name: "Tasks" }).click();
  await page.getByLabel("Find by id").fill(env.TASK_ID);
  await page.getByRole("button", { name: "Open" }).click();
  const facts = page.locator("dl.facts");
  await facts.locator("[data-field=progress]", { hasText: "60%" }).waitFor();
  await facts.locator("[data-field=progress]", { hasText: "halfway" }).waitFor();
  assert.equal(await page.getByRole("progressbar", { name: "Progress" }).getAttribute("value"), "60");
  // The test's worker finishes once told (a file appears), while the page is open.
  const fs = await import("node:fs/promises");
  await fs.writeFile(env.FINISH_FILE, "go");
  await facts.locator("[data-field=status]", { hasText: "succeeded" }).waitFor();
  await page.locator("[data-bytes=result] pre", { hasText: "ALL DONE" }).waitFor();
}
