import { clear, field, h } from "../dom.js";

export function loginPage(container, session, onSignedIn) {
  const email = h("input", { type: "email", name: "email", autocomplete: "username", required: true });
  const password = h("input", {
    type: "password", name: "password", autocomplete: "current-password", required: true,
  });
  const message = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "login card", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    field("E-mail", email),
    field("Password", password),
    message,
    submit,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.textContent = "";
    submit.disabled = true;
    try {
      await session.login(email.value, password.value);
      onSignedIn();
    } catch (error) {
      message.textContent = error.status === 401
        ? "Wrong e-mail or password."
        : `Could not sign in: ${error.message}`;
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  clear(container, form);
  email.focus();
}
