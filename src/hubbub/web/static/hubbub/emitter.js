// emitter.js: the events of a room, a channel and a file transfer.

/**
 * An EventTarget whose `on(type, handler)` passes the event's detail to the handler and
 * returns a function that removes it. `addEventListener` works as usual (`event.detail`).
 */
export class Emitter extends EventTarget {
  /**
   * @param {string} type
   * @param {(detail: any) => void} handler  called with the event's detail
   * @returns {() => void} removes the handler
   */
  on(type, handler) {
    const listener = (event) => handler(event.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * @param {string} type
   * @returns {Promise<any>} the detail of the next such event
   */
  once(type) {
    return new Promise((resolve) => {
      const off = this.on(type, (detail) => {
        off();
        resolve(detail);
      });
    });
  }

  /**
   * @param {string} type
   * @param {any} [detail]
   */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  hasListeners(type) {
    return (this._listenerCounts?.get(type) ?? 0) > 0;
  }

  addEventListener(type, listener, options) {
    this._listenerCounts ??= new Map();
    this._listenerCounts.set(type, (this._listenerCounts.get(type) ?? 0) + 1);
    super.addEventListener(type, listener, options);
  }

  removeEventListener(type, listener, options) {
    const count = this._listenerCounts?.get(type) ?? 0;
    if (count > 0) this._listenerCounts.set(type, count - 1);
    super.removeEventListener(type, listener, options);
  }
}
