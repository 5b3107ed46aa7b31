# fmha: the portable CPU-only build (node-gyp), for machines without cmake.
# The full build (CUDA included) is CMakeLists.txt; keep the two in step:
# same sources (every native/**/*.cc), same defines, same per-file ISA flags.
# scripts/build-addon.mjs falls back to this file when cmake/cmake-js fail;
# `FMHA_BUILDER=gyp npm install` forces it. Output: build/Release/fmha.node.
{
  'variables': {
    # Every file under native/, '/'-separated, sorted (node >= 20 has recursive readdir).
    'fmha_ls': "require('fs').readdirSync('native',{recursive:true}).map(f=>'native/'+f.split(require('path').sep).join('/')).filter(f=>f.endsWith('.cc')).sort()",
  },
  'target_defaults': {
    'include_dirs': [
      'native',
      "<!(node -p \"require('node-addon-api').include_dir\")",
    ],
    'defines': [
      'NAPI_VERSION=8',
      'NAPI_CPP_EXCEPTIONS',
      'NODE_ADDON_API_DISABLE_DEPRECATED',
    ],
    # Node's common.gypi turns exceptions and RTTI off and picks its own -std.
    'cflags!': ['-fno-exceptions'],
    'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17', '-std=gnu++20', '-std=c++20'],
    'cflags': ['-O3', '-fexceptions', '-pthread', '-fvisibility=hidden'],
    'cflags_cc': ['-std=c++17', '-fexceptions', '-frtti', '-fvisibility-inlines-hidden'],
    'ldflags': ['-pthread'],
    'xcode_settings': {
      'GCC_ENABLE_CPP_EXCEPTIONS': 'YES',
      'GCC_ENABLE_CPP_RTTI': 'YES',
      'CLANG_CXX_LANGUAGE_STANDARD': 'c++17',
      'CLANG_CXX_LIBRARY': 'libc++',
      'GCC_SYMBOLS_PRIVATE_EXTERN': 'YES',
      'GCC_OPTIMIZATION_LEVEL': '3',
      'MACOSX_DEPLOYMENT_TARGET': '11.0',
    },
    'msvs_settings': {
      'VCCLCompilerTool': { 'ExceptionHandling': 1, 'AdditionalOptions': ['/std:c++17'] },
    },
  },
  'targets': [
    {
      'target_name': 'fmha',
      'type': 'loadable_module',
      # Baseline ISA only (never -march=native): *_avx2.cc / *_avx512.cc live in
      # the static libraries below, with their own flags, and are picked at run time.
      'sources': [
        "<!@(node -p \"<(fmha_ls).filter(f=>!/_avx[^/]*[.]cc$/.test(f)).join(' ')\")",
      ],
      'conditions': [
        ['target_arch=="x64" or target_arch=="ia32"', {
          'dependencies': ['fmha_avx2', 'fmha_avx512', 'fmha_avx512bf16'],
        }],
      ],
    },
  ],
  'conditions': [
    ['target_arch=="x64" or target_arch=="ia32"', {
      'targets': [
        {
          'target_name': 'fmha_avx2',
          'type': 'static_library',
          'standalone_static_library': 1,
          'sources': [
            "<!@(node -p \"<(fmha_ls).filter(f=>f.endsWith('_avx2.cc')).join(' ')\")",
          ],
          'cflags': ['-mavx2', '-mfma', '-mf16c', '-fPIC'],
          'xcode_settings': { 'OTHER_CFLAGS': ['-mavx2', '-mfma', '-mf16c'] },
        },
        {
          'target_name': 'fmha_avx512',
          'type': 'static_library',
          'standalone_static_library': 1,
          'sources': [
            "<!@(node -p \"<(fmha_ls).filter(f=>f.endsWith('_avx512.cc')).join(' ')\")",
          ],
          'cflags': ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx2', '-mfma', '-mf16c', '-fPIC'],
          'xcode_settings': {
            'OTHER_CFLAGS': ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx2', '-mfma', '-mf16c'],
          },
        },
        {
          'target_name': 'fmha_avx512bf16',
          'type': 'static_library',
          'standalone_static_library': 1,
          'sources': [
            "<!@(node -p \"<(fmha_ls).filter(f=>f.endsWith('_avx512bf16.cc')).join(' ')\")",
          ],
          'cflags': ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512bf16', '-mavx2', '-mfma', '-mf16c', '-fPIC'],
          'xcode_settings': {
            'OTHER_CFLAGS': ['-mavx512f', '-mavx512bw', '-mavx512vl', '-mavx512dq', '-mavx512bf16', '-mavx2', '-mfma', '-mf16c'],
          },
        },
      ],
    }],
  ],
}
