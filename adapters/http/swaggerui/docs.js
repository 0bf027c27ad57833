// Starts Swagger UI on activityd's own OpenAPI document. Loaded by
// /docs from the same origin (no inline script, so the page's Content
// Security Policy can forbid inline scripts).
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    // Keep what was entered with "Authorize" across reloads (in this
    // browser's local storage).
    persistAuthorization: true,
    tryItOutEnabled: false,
    displayRequestDuration: true,
    // Never send the document to an online validator.
    validatorUrl: null
  });
});
