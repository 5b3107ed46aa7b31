/** Stable error codes; see DESIGN §4 for which mistake produces which. */
export type FmhaErrorCode =
  | 'ERR_FMHA_SHAPE'
  | 'ERR_FMHA_DTYPE'
  | 'ERR_FMHA_ARGUMENT'
  | 'ERR_FMHA_BACKEND'
  | 'ERR_FMHA_OOM'
  | 'ERR_FMHA_CUDA';

/**
 * Every error fmha raises (except `AbortError` for an aborted call).
 * The message names the argument, what was expected and what arrived,
 * e.g. `q.shape[3] (headDim) must be in [1, 256], got 512`.
 */
export class FmhaError extends Error {
  readonly code: FmhaErrorCode;
  constructor(message: string, code: FmhaErrorCode) {
    super(message);
    this.name = 'FmhaError';
    this.code = code;
  }
}
