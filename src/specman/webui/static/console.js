// specman console pages: every change goes through the system API (/v1/...) with the session cookie.
// No framework, no build step. Text from the server is only ever set with textContent (never innerHTML).
"use strict";

// the PEM public keys in a text area (several may be pasted one after the other)
const PEM_PUBLIC_KEY = /-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g;

const CHECK_LABELS = {
  endpoint: "Endpoint",
  reachable: "Reachable",
  tls: "TLS",
  credentials: "Credentials",
  repository: "Repository",
  signatures: "Signatures",
};

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `request failed (HTTP ${status})`);
    this.status = status;
    this.field = body && body.field;
  }
}

function toLogin(expired) {
  const query = new URLSearchParams({ next: location.pathname });
  if (expired) query.set("expired", "1");
  location.assign(`/login?${query}`);
}

async function api(method, path, body) {
  const options = { method, headers: { Accept: "application/json" }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  let data = null;
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
  }
  if (response.status === 401 && !path.startsWith("/v1/auth/syslogin")) {
    toLogin(true);
    throw new ApiError(401, { message: "Your session has expired." });
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function $(id) {
  return document.getElementById(id);
}

function showError(element, error) {
  element.textContent = error ? error.message || String(error) : "";
  element.hidden = !error;
}

async function busy(button, work) {
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    return await work();
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
  }
}

function loadFileInto(input, textarea) {
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    file.text().then((text) => {
      textarea.value = text;
      textarea.dispatchEvent(new Event("input", { bubbles: true }));
    });
  });
}

// -- common: log out ------------------------------------------------------------------------------------------
function setupLogout() {
  const button = $("logout");
  if (!button) return;
  button.addEventListener("click", async () => {
    try {
      await api("POST", "/v1/auth/logout");
    } catch (_) {
      // the session may be gone already: the login page is where we go anyway
    }
    location.assign("/login?loggedOut=1");
  });
}

// -- login ----------------------------------------------------------------------------------------------------
function setupLogin() {
  const form = $("login-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    showError($("login-error"), null);
    try {
      await busy(button, () =>
        api("POST", "/v1/auth/syslogin?setCookie=true", {
          username: form.elements.username.value,
          password: form.elements.password.value,
        }),
      );
      location.assign(form.dataset.next || "/registries");
    } catch (error) {
      form.elements.password.value = "";
      const message = error.status === 401 ? "Wrong username or password." : error.message;
      showError($("login-error"), { message });
      form.elements.password.focus();
    }
  });
}

// -- pack registries ------------------------------------------------------------------------------------------
function setupMenus() {
  const close = (menu) => {
    menu.querySelector(".menu-list").hidden = true;
    menu.querySelector(".menu-button").setAttribute("aria-expanded", "false");
  };
  const closeAll = () => document.querySelectorAll(".menu").forEach(close);
  document.querySelectorAll(".menu").forEach((menu) => {
    const button = menu.querySelector(".menu-button");
    const list = menu.querySelector(".menu-list");
    const items = () => Array.from(list.querySelectorAll("[role=menuitem]"));
    const open = () => {
      closeAll();
      list.hidden = false;
      button.setAttribute("aria-expanded", "true");
      items()[0].focus();
    };
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      if (list.hidden) open();
      else close(menu);
    });
    button.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown") {
        event.preventDefault();
        open();
      }
    });
    list.addEventListener("keydown", (event) => {
      const all = items();
      const index = all.indexOf(document.activeElement);
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        const step = event.key === "ArrowDown" ? 1 : all.length - 1;
        all[(index + step) % all.length].focus();
      } else if (event.key === "Escape" || event.key === "Tab") {
        close(menu);
        if (event.key === "Escape") button.focus();
      }
    });
    list.addEventListener("click", () => close(menu));
  });
  document.addEventListener("click", closeAll);
}

function renderChecks(result) {
  const box = $("validation");
  const list = $("validation-checks");
  list.replaceChildren();
  for (const check of result.checks) {
    const skipped = !check.ok && check.message.startsWith("not checked");
    const item = document.createElement("li");
    item.className = check.ok ? "ok" : skipped ? "skip" : "fail";
    item.dataset.check = check.name;
    const mark = document.createElement("span");
    mark.className = "mark";
    mark.textContent = check.ok ? "✓" : skipped ? "–" : "✗";
    mark.setAttribute("aria-label", check.ok ? "passed" : skipped ? "not checked" : "failed");
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = CHECK_LABELS[check.name] || check.name;
    const message = document.createElement("span");
    message.className = "msg";
    message.textContent = check.message;
    item.append(mark, label, message);
    list.append(item);
  }
  const summary = $("validation-summary");
  summary.textContent = result.ok ? "passed" : "failed";
  summary.className = `status ${result.ok ? "ok" : "failed"}`;
  box.hidden = false;
}

function setupRegistries() {
  setupMenus();
  const dialog = $("registry-dialog");
  const form = $("registry-form");
  const fields = form.elements;
  const confirmButton = $("confirm");
  const validateButton = $("validate");
  let editing = null; // uid of the registry being edited, null when adding
  let validated = null; // the form values of the last successful validation

  const ecr = () => fields.authType.value === "ecr";
  const showAuth = () => {
    $("basic-fields").hidden = ecr();
    $("aws-fields").hidden = !ecr();
  };
  fields.authType.addEventListener("change", showAuth);
  const values = () => {
    const body = {
      endpoint: fields.endpoint.value.trim(),
      caCert: fields.caCert.value,
      insecureSkipVerify: fields.insecureSkipVerify.checked,
      containsSpectroManifests: fields.containsSpectroManifests.checked,
      verify: fields.verify.value,
      verifyKeys: fields.verifyKeys.value.match(PEM_PUBLIC_KEY) || [],
      verifyTags: fields.verifyTags.value.split(/\s+/).filter((t) => t !== ""),
      authType: fields.authType.value,
    };
    if (ecr()) {
      body.awsAccessKeyId = fields.awsAccessKeyId.value.trim();
      body.awsRoleArn = fields.awsRoleArn.value.trim();
      body.awsExternalId = fields.awsExternalId.value.trim();
      // write-only secret: empty means "unchanged" for a stored registry
      if (fields.awsSecretAccessKey.value !== "" || editing === null) {
        body.awsSecretAccessKey = fields.awsSecretAccessKey.value;
      }
      return body;
    }
    body.username = fields.username.value;
    // write-only password: empty means "unchanged" for a stored registry
    if (fields.password.value !== "" || editing === null) body.password = fields.password.value;
    return body;
  };
  const key = () => JSON.stringify([editing, values()]);
  const refreshConfirm = () => {
    const current = validated !== null && validated === key();
    confirmButton.disabled = !current;
    const stale = !$("validation").hidden && !current && validated !== "failed";
    $("validation-stale").hidden = !stale;
    $("validation").classList.toggle("stale", stale);
  };
  form.addEventListener("input", refreshConfirm);
  form.addEventListener("change", refreshConfirm);
  loadFileInto($("f-ca-file"), fields.caCert);

  const markInvalid = (error) => {
    form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
    if (error && error.field && fields[error.field]) {
      fields[error.field].setAttribute("aria-invalid", "true");
      fields[error.field].focus();
    }
  };

  const openDialog = (registry) => {
    form.reset();
    editing = registry ? registry.uid : null;
    validated = null;
    $("dialog-title").textContent = registry ? `Edit registry ${registry.name}` : "Add registry";
    fields.name.value = registry ? registry.name : "";
    fields.endpoint.value = registry ? registry.endpoint : "";
    fields.username.value = registry ? registry.username : "";
    fields.password.value = "";
    fields.password.placeholder = registry && registry.passwordSet ? "•••••• (unchanged)" : "";
    $("f-password-help").textContent = registry
      ? "Write-only: never shown. Leave empty to keep the stored one."
      : "Write-only: never shown back.";
    fields.authType.value = registry && registry.authType === "ecr" ? "ecr" : "basic";
    fields.awsAccessKeyId.value = registry ? registry.awsAccessKeyId || "" : "";
    fields.awsSecretAccessKey.value = "";
    fields.awsSecretAccessKey.placeholder = registry && registry.awsSecretAccessKeySet ? "•••••• (unchanged)" : "";
    fields.awsRoleArn.value = registry ? registry.awsRoleArn || "" : "";
    fields.awsExternalId.value = registry ? registry.awsExternalId || "" : "";
    showAuth();
    fields.caCert.value = registry ? registry.caCert : "";
    fields.insecureSkipVerify.checked = registry ? registry.insecureSkipVerify : false;
    fields.containsSpectroManifests.checked = registry ? registry.containsSpectroManifests : false;
    fields.verify.value = registry && registry.verify ? registry.verify : "off";
    fields.verifyKeys.value = registry && registry.verifyKeys ? registry.verifyKeys.join("\n") : "";
    fields.verifyTags.value = registry && registry.verifyTags ? registry.verifyTags.join(" ") : "";
    $("validation").hidden = true;
    showError($("form-error"), null);
    markInvalid(null);
    refreshConfirm();
    dialog.showModal();
    (registry ? fields.endpoint : fields.name).focus();
  };

  $("add-registry").addEventListener("click", () => openDialog(null));
  dialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => dialog.close()));

  validateButton.addEventListener("click", async () => {
    showError($("form-error"), null);
    markInvalid(null);
    const tried = key();
    const body = values();
    if (editing !== null) body.uid = editing;
    try {
      const result = await busy(validateButton, () => api("POST", "/v1/registries/oci/validate", body));
      renderChecks(result);
      validated = result.ok ? tried : "failed";
    } catch (error) {
      validated = null;
      $("validation").hidden = true;
      showError($("form-error"), error);
      markInvalid(error);
    }
    refreshConfirm();
  });

  confirmButton.addEventListener("click", async () => {
    if (validated !== key()) return refreshConfirm();
    showError($("form-error"), null);
    const body = { name: fields.name.value.trim(), ...values() };
    try {
      await busy(confirmButton, async () => {
        const saved = editing === null
          ? await api("POST", "/v1/registries/oci", body)
          : await api("PUT", `/v1/registries/oci/${encodeURIComponent(editing)}`, body);
        // record the validation of the values now stored (the table's "Last validation")
        await api("POST", `/v1/registries/oci/${encodeURIComponent(saved.uid)}/validate`);
      });
      location.reload();
    } catch (error) {
      showError($("form-error"), error);
      markInvalid(error);
      refreshConfirm();
    }
  });

  const deleteDialog = $("delete-dialog");
  deleteDialog.querySelectorAll("[data-close]").forEach((b) => b.addEventListener("click", () => deleteDialog.close()));
  let deleting = null;
  $("delete-confirm").addEventListener("click", async () => {
    try {
      await busy($("delete-confirm"), () => api("DELETE", `/v1/registries/oci/${encodeURIComponent(deleting)}`));
      location.reload();
    } catch (error) {
      deleteDialog.close();
      showError($("page-error"), error);
    }
  });

  document.querySelectorAll("#registries [data-action]").forEach((item) => {
    item.addEventListener("click", async () => {
      const row = item.closest("tr");
      const uid = row.dataset.uid;
      showError($("page-error"), null);
      try {
        if (item.dataset.action === "edit") {
          openDialog(await api("GET", `/v1/registries/oci/${encodeURIComponent(uid)}`));
        } else if (item.dataset.action === "validate") {
          row.querySelector(".validation").textContent = "Validating…";
          await api("POST", `/v1/registries/oci/${encodeURIComponent(uid)}/validate`);
          location.reload();
        } else if (item.dataset.action === "delete") {
          deleting = uid;
          $("delete-name").textContent = row.dataset.name;
          deleteDialog.showModal();
          $("delete-confirm").focus();
        }
      } catch (error) {
        showError($("page-error"), error);
      }
    });
  });
}

// -- SCAR -----------------------------------------------------------------------------------------------------
function setupScar() {
  const form = $("scar-form");
  const fields = form.elements;
  loadFileInto($("s-ca-file"), fields.caCert);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("form-error"), null);
    const body = {
      endpoint: fields.endpoint.value.trim(),
      username: fields.username.value,
      caCert: fields.caCert.value,
      insecureSkipVerify: fields.insecureSkipVerify.checked,
    };
    if (fields.password.value !== "" || fields.username.value === "") body.password = fields.password.value;
    try {
      await busy(form.querySelector("button[type=submit]"), () => api("PUT", "/v1/system/config/scar", body));
      location.assign("/scar?saved=1");
    } catch (error) {
      showError($("form-error"), error);
      if (error.field && fields[error.field]) fields[error.field].focus();
    }
  });
}

// -- jobs -----------------------------------------------------------------------------------------------------
function setupJobs() {
  document.querySelectorAll("button.run").forEach((button) => {
    button.addEventListener("click", async () => {
      showError($("page-error"), null);
      try {
        await busy(button, () => api("POST", `/v1/jobs/internal/${encodeURIComponent(button.dataset.job)}/run`));
        location.reload();
      } catch (error) {
        showError($("page-error"), error);
      }
    });
  });
  // while a run is queued or running, follow it through the API and show the page again when a state changes
  const active = () => document.querySelector('.run-row[data-state="running"], .run-row[data-state="queued"]');
  if (!active()) return;
  const poll = async () => {
    try {
      for (const section of document.querySelectorAll("section.job")) {
        const job = await api("GET", `/v1/jobs/internal/${encodeURIComponent(section.dataset.job)}`);
        const signature = job.runs.slice(0, 8).map((run) => `${run.id}:${run.state} `).join("");
        if (signature !== section.dataset.signature) {
          location.reload();
          return;
        }
      }
    } catch (_) {
      // a failed poll is retried below; a 401 has already gone to the login page
    }
    setTimeout(poll, 1000);
  };
  setTimeout(poll, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  setupLogout();
  const page = document.body.dataset.page;
  if (page === "login") setupLogin();
  else if (page === "registries") setupRegistries();
  else if (page === "scar") setupScar();
  else if (page === "jobs") setupJobs();
});
