// errors.js: what the library rejects and reports with.

/**
 * An error the server or the library reports, with a code: the server's
 * (docs/protocol.md#error-codes, ERROR_CODES in /protocol.js) or the library's own
 * (`unreachable`, `timeout`, `closed`, `not-connected`, `bad-options`, ...; docs/browser.md).
 */
export class HubbubError extends Error {
  /**
   * @param {string} code
   * @param {string} [message]
   * @param {object} [details]  more fields (`reason`, `closeCode`...)
   */
  constructor(code, message, details = {}) {
    super(message || code);
    this.name = "HubbubError";
    /** @type {string} */
    this.code = code;
    Object.assign(this, details);
  }
}
