/**
 * Callable class instances, as transformers.js' models are (`await model(inputs)`): the constructor returns a
 * function whose prototype is the class's, so methods, getters and `instanceof` work as on any instance, and
 * calling it runs the class's `_call`.
 */
export abstract class Callable {
  constructor() {
    const f = (...args: unknown[]): unknown => Callable.prototype.invoke.call(f, args);
    return Object.setPrototypeOf(f, new.target.prototype);
  }

  private invoke(args: unknown[]): unknown {
    return this._call(...args);
  }

  /** What calling the instance does. */
  protected abstract _call(...args: unknown[]): unknown;
}
