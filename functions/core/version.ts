/** The release this code is; a unit test holds it equal to package.json's version. */
export const VERSION = '0.1.0';
