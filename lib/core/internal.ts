/**
 * The key to the library's own constructors. Socket and Listener adopt an fd without checking it
 * (the library has just made it); `private` is only a TypeScript word, so a JavaScript caller
 * could otherwise hand them any number and have it closed later. Not exported from the package.
 */
export const INTERNAL: unique symbol = Symbol('m-socket internal');
